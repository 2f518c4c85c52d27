"""Transforms, configs, Wiener filter properties, Separator behaviour and the public API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import unmix
from unmix.config import CONFIGS, ModelConfig
from unmix.errors import UnmixError
from unmix.filtering import WienerSettings, wiener, wiener_windowed
from unmix.models.umx import UMX, OpenUnmix
from unmix.separator import Separator
from unmix.transforms import ISTFT, STFT, bandwidth_to_max_bin, magnitude, nb_frames

TINY = ModelConfig(targets=("vocals", "drums"), n_fft=512, n_hop=128, hidden_size=16, max_bin=200)


def test_public_api_names():
    assert sorted(unmix.__all__) == sorted(
        [
            "ARCHITECTURES",
            "CONFIGS",
            "ISTFT",
            "STFT",
            "UMX",
            "XUMX",
            "AudioError",
            "ModelConfig",
            "OpenUnmix",
            "OutputOptions",
            "SeparationModel",
            "Separator",
            "StreamSeparator",
            "UnmixError",
            "WeightsError",
            "WienerSettings",
            "__version__",
            "get_architecture",
            "list_models",
            "load_model",
            "load_separator",
            "save_model",
            "separate",
            "separate_files",
            "wiener",
        ]
    )
    for name in unmix.__all__:
        assert hasattr(unmix, name)


@pytest.mark.parametrize(("n_fft", "n_hop"), [(4096, 1024), (1024, 512), (512, 128)])
@pytest.mark.parametrize("length", [44100, 12345])
def test_stft_istft_round_trip(n_fft, n_hop, length):
    x = torch.randn(2, 2, length)
    spec = STFT(n_fft, n_hop, center=True)(x)
    assert spec.shape == (2, 2, n_fft // 2 + 1, nb_frames(length, n_fft, n_hop, True))
    y = ISTFT(n_fft, n_hop, center=True)(spec, length=length)
    assert torch.sqrt(((x - y) ** 2).mean()) < 1e-6


def test_stft_matches_torch_with_periodic_hann_and_frames():
    x = torch.randn(1, 1, 300032)
    spec = STFT(4096, 1024, center=True)(x)
    assert spec.shape[-1] == 294
    ref = torch.stft(
        x[0],
        4096,
        1024,
        window=torch.hann_window(4096, periodic=True),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    assert torch.equal(spec[0], ref)
    assert STFT(4096, 1024, center=False)(torch.randn(1, 264600)).shape[-1] == 255


def test_magnitude_mono_averages_channel_magnitudes():
    spec = torch.randn(1, 2, 5, 3, dtype=torch.complex64)
    mono = magnitude(spec, mono=True)
    assert mono.shape == (1, 1, 5, 3)
    assert torch.allclose(mono[:, 0], spec.abs().mean(dim=1))


def test_bandwidth_to_max_bin():
    assert bandwidth_to_max_bin(44100, 4096, 16000) == 1487
    assert bandwidth_to_max_bin(16000, 1024, 16000) == 513
    assert CONFIGS["umxhq"].max_bin == 1487


def test_config_json_round_trip_and_type_errors(tmp_path):
    path = tmp_path / "config.json"
    TINY.save(path)
    assert ModelConfig.load(path) == TINY
    data = json.loads(path.read_text())
    data["hidden_size"] = "512"
    path.write_text(json.dumps(data))
    with pytest.raises(UnmixError, match="'hidden_size' must be an integer"):
        ModelConfig.load(path)
    with pytest.raises(UnmixError, match="unknown model config keys"):
        ModelConfig.from_dict({"hidden": 3})
    with pytest.raises(UnmixError, match="max_bin"):
        ModelConfig(max_bin=99999)


@pytest.mark.parametrize("nb_sources", [1, 2, 4])
@pytest.mark.parametrize("nb_channels", [1, 2])
@pytest.mark.parametrize("softmask", [False, True])
def test_wiener_em_is_conservative(nb_sources, nb_channels, softmask):
    gen = torch.Generator().manual_seed(nb_sources * 10 + nb_channels)
    mix = torch.randn(40, 30, nb_channels, dtype=torch.complex64, generator=gen)
    V = torch.rand(40, 30, nb_channels, nb_sources, generator=gen) * mix.abs()[..., None]
    y = wiener(V, mix, niter=1, softmask=softmask, residual=True)
    assert y.shape == (40, 30, nb_channels, nb_sources + 1)
    # Σ_j G_j = I − √eps·Σ_x⁻¹: exact up to the regulariser where the sources have power
    power = (y.abs() ** 2).mean(dim=2).sum(dim=-1)  # (N, F)
    loud = power > 1e-2
    assert loud.float().mean() > 0.5
    assert (y.sum(-1) - mix).abs()[loud].max() < 1e-3


def test_wiener_matches_float64_reference_within_float32_rounding():
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(50, 20, 2, dtype=torch.complex128, generator=gen)
    V = torch.rand(50, 20, 2, 3, dtype=torch.float64, generator=gen)
    y64 = wiener(V, mix, niter=2)
    y32 = wiener(V.float(), mix.to(torch.complex64), niter=2)
    assert (y32.to(torch.complex128) - y64).abs().max() < 1e-4


def test_wiener_windowed_windows_are_independent():
    mix = torch.randn(70, 10, 2, dtype=torch.complex64)
    V = torch.rand(70, 10, 2, 2)
    full = wiener_windowed(V, mix, WienerSettings(niter=1, wiener_win_len=30))
    part = wiener(V[30:60], mix[30:60], niter=1)
    assert torch.allclose(full[30:60], part)
    whole = wiener_windowed(V, mix, WienerSettings(niter=1, wiener_win_len=None))
    assert torch.equal(whole, wiener(V, mix, 1))


def _tiny_separator(targets=("vocals", "drums"), **kwargs) -> Separator:
    config = TINY.with_(targets=targets)
    torch.manual_seed(0)
    models = {t: OpenUnmix.from_config(config).freeze() for t in targets}
    return Separator(UMX(models), config, WienerSettings(**kwargs)).freeze()


def test_single_target_with_em_does_not_crash_and_warns():
    with pytest.warns(UserWarning, match="niter=0"):
        sep = _tiny_separator(("vocals",), niter=1)
    assert sep.wiener.niter == 0
    out = sep(torch.randn(1, 2, 4000))
    assert out.shape == (1, 1, 2, 4000)
    sep = _tiny_separator(("vocals",), niter=1, residual=True)
    out = sep(torch.randn(1, 2, 4000))
    assert sep.output_names == ("vocals", "residual") and out.shape == (1, 2, 2, 4000)


def test_mono_input_gives_mono_stems_that_sum_to_the_mix():
    sep = _tiny_separator(niter=1)
    x = torch.randn(1, 1, 5000)
    out = sep(x)
    assert out.shape == (1, 2, 1, 5000)
    assert (out.sum(1) - x).abs().max() < 1e-4


def test_separate_api_keeps_rate_and_length(tmp_path):
    sep = _tiny_separator(niter=1)
    audio = np.random.default_rng(0).standard_normal((2, 48000 * 2 + 7)).astype(np.float32) * 0.1
    stems = unmix.separate(audio, 48000, model=sep)
    assert list(stems) == ["vocals", "drums"]
    assert all(s.shape == audio.shape for s in stems.values())
    with pytest.raises(unmix.AudioError, match="channels"):
        unmix.separate(np.zeros((6, 1000), np.float32), 44100, model=sep)
    with pytest.raises(unmix.AudioError, match="sample_rate is required"):
        unmix.separate(audio, model=sep)


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from unmix.fileio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
