"""The real-arithmetic, all-windows-at-once Wiener EM of the export equals the windowed
complex one of :mod:`unmix.filtering` (the torch separator's)."""

from __future__ import annotations

import pytest
import torch

from unmix.export.wiener import from_windows, to_windows, wiener_windows
from unmix.filtering import WienerSettings, frame_windows, wiener_sources


def reference(V: torch.Tensor, mix: torch.Tensor, settings: WienerSettings) -> torch.Tensor:
    parts = [
        wiener_sources(V[..., w, :], mix[:, w], settings)
        for w in frame_windows(mix.shape[1], settings.wiener_win_len)
    ]
    return torch.cat(parts, dim=2)


def exported(V: torch.Tensor, mix: torch.Tensor, settings: WienerSettings) -> torch.Tensor:
    length = settings.wiener_win_len
    re, im = wiener_windows(
        to_windows(V, length),
        (to_windows(mix.real, length)[:, None], to_windows(mix.imag, length)[:, None]),
        settings,
    )
    return torch.complex(from_windows(re, mix.shape[1]), from_windows(im, mix.shape[1]))


@pytest.mark.parametrize("channels,model_channels", [(2, 2), (1, 1), (2, 1)])
@pytest.mark.parametrize(
    "settings",
    [
        WienerSettings(niter=0),
        WienerSettings(niter=0, softmask=True, residual=True),
        WienerSettings(niter=1, wiener_win_len=7),
        WienerSettings(niter=2, softmask=True, wiener_win_len=5),
        WienerSettings(niter=3, residual=True, wiener_win_len=None),
    ],
    ids=["niter0", "mask-res", "niter1-win7", "niter2-mask-win5", "niter3-res-all"],
)
def test_equals_the_windowed_complex_filter(channels, model_channels, settings):
    gen = torch.Generator().manual_seed(channels + 10 * model_channels)
    frames, bins = 23, 9  # 23 frames: the last window is partial (zero-padded in the graph)
    mix = (
        torch.complex(
            torch.randn(channels, frames, bins, generator=gen),
            torch.randn(channels, frames, bins, generator=gen),
        )
        * 30
    )  # peaks above scale_factor, so the per-window scaling matters
    mix[:, 3, 4] = 0  # an exactly-zero bin (unit carrier there)
    V = torch.rand(3, model_channels, frames, bins, generator=gen) * 20
    expected = reference(V, mix, settings)
    got = exported(V, mix, settings)
    assert got.shape == expected.shape
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-5 * scale


def test_windows_round_trip():
    x = torch.arange(2 * 11 * 3, dtype=torch.float32).reshape(2, 11, 3)
    windows = to_windows(x, 4)
    assert windows.shape == (3, 2, 4, 3)
    assert torch.equal(windows[1], x[:, 4:8])
    assert not windows[2, :, 3:].any()  # zero padding of the last window
    assert torch.equal(from_windows(windows, 11), x)
