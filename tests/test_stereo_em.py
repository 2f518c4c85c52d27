"""The stereo Wiener filter in groups of frames (unmix.stereo_em) and the windowed
overlap-add: grouping changes neither the estimates nor the stems (beyond float32's last bit)."""

from __future__ import annotations

import pytest
import torch

import unmix.separator as separator_module
from unmix.config import CONFIGS
from unmix.filtering import WienerSettings, wiener_groups, wiener_sources
from unmix.models.umx import UMX, OpenUnmix
from unmix.separator import Separator
from unmix.stereo_em import GROUP_FRAMES
from unmix.transforms import ISTFT, STFT


def _window(nb_channels: int = 2, nb_frames: int = 37, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mix = 20 * torch.randn(nb_channels, nb_frames, 9, dtype=torch.complex64, generator=gen)
    mix[:, 3:4, 4] = 0  # an exactly silent bin: the carrier's phase falls back to 0
    V = torch.rand(3, nb_channels, nb_frames, 9, generator=gen) * mix.abs()
    return V, mix


@pytest.mark.parametrize("group", [1, 5, 16, 37, 100])
@pytest.mark.parametrize(
    "settings",
    [
        WienerSettings(),
        WienerSettings(niter=3, softmask=True),
        WienerSettings(niter=2, residual=True, scale_factor=0.5),
    ],
)
def test_groups_are_the_window_estimates_exactly(group, settings):
    V, mix = _window()
    whole = wiener_sources(V, mix, settings)
    pieces = list(wiener_groups(V, mix, settings, group))
    assert [first for first, _ in pieces] == list(range(0, 37, group))
    assert all(y.shape[2] == min(group, 37 - first) for first, y in pieces)
    got = torch.cat([y for _, y in pieces], dim=2)
    # elementwise per frame: equal up to the last bit of float32 (vector and scalar loops)
    torch.testing.assert_close(got, whole, atol=1e-6 * whole.abs().max().item(), rtol=3e-7)


@pytest.mark.parametrize(("nb_channels", "niter"), [(1, 1), (3, 1), (2, 0)])
def test_other_cases_come_as_one_group(nb_channels, niter):
    V, mix = _window(nb_channels)
    settings = WienerSettings(niter=niter)
    ((first, y),) = wiener_groups(V, mix, settings, 4)
    assert first == 0
    torch.testing.assert_close(y, wiener_sources(V, mix, settings), atol=0, rtol=0)


@pytest.mark.parametrize(("n_fft", "n_hop", "group"), [(64, 16, 3), (64, 16, 50), (60, 16, 4)])
def test_overlap_add_in_groups_is_the_istft(n_fft, n_hop, group):
    gen = torch.Generator().manual_seed(2)
    audio = torch.randn(2, 3, 700, generator=gen)
    spec = STFT(n_fft, n_hop)(audio)  # (2, 3, F, N)
    istft = ISTFT(n_fft, n_hop)
    nb_frames = spec.shape[-1]
    frames = spec.transpose(-1, -2).contiguous()  # (2, 3, N, F)
    out = audio.new_zeros(2, 3, istft.padded_length(nb_frames))
    for first in range(0, nb_frames, group):
        istft.overlap_add(frames[..., first : first + group, :], out, first)
    got = istft.normalize(out, nb_frames, audio.shape[-1])
    torch.testing.assert_close(got, istft(spec, length=700), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got, audio, atol=1e-5, rtol=1e-5)


def test_the_separator_filters_in_groups_on_cpu_with_the_same_stems(monkeypatch):
    cfg = CONFIGS["umxhq"].with_(hidden_size=8)
    torch.manual_seed(0)
    sep = Separator(UMX({t: OpenUnmix.from_config(cfg) for t in cfg.targets}), cfg).freeze()
    audio = torch.randn(1, 2, 44100, generator=torch.Generator().manual_seed(3))
    seen = []
    real = separator_module.wiener_groups

    def spy(*args, **kwargs):
        seen.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(separator_module, "wiener_groups", spy)
    with torch.inference_mode():
        grouped = sep(audio)
        monkeypatch.setattr(separator_module, "GROUP_FRAMES", None)
        whole = sep(audio)
    assert seen == [GROUP_FRAMES, None]  # 44 frames: one Wiener window each time
    torch.testing.assert_close(grouped, whole, atol=1e-6 * whole.abs().max().item(), rtol=0)
