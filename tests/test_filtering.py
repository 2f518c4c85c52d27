"""One WienerSettings for every layer, validated once; one windowing function; the windowed
filter keeps scale_factor and eps (issue 13)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from unmix.errors import UnmixError
from unmix.filtering import WienerSettings, frame_windows, wiener, wiener_windowed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"niter": -1}, "niter must be in 0..1000"),
        ({"niter": 10**9}, "niter must be in 0..1000"),
        ({"niter": 1.5}, "niter must be in"),
        ({"niter": True}, "niter must be in"),
        ({"wiener_win_len": 0}, "wiener_win_len must be >= 1 or None"),
        ({"wiener_win_len": -3}, "wiener_win_len must be >= 1 or None"),
        ({"scale_factor": 0.0}, "scale_factor must be a positive number"),
        ({"scale_factor": math.nan}, "scale_factor must be a positive number"),
        ({"eps": math.inf}, "eps must be a positive number"),
    ],
)
def test_bad_settings_are_one_line_errors(changes, message):
    with pytest.raises(UnmixError, match=message) as err:
        WienerSettings(**changes)
    assert "\n" not in str(err.value)


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        WienerSettings().niter = 3  # type: ignore[misc]


def test_frame_windows_cover_every_frame_once():
    assert [(w.start, w.stop) for w in frame_windows(70, 30)] == [(0, 30), (30, 60), (60, 70)]
    assert [(w.start, w.stop) for w in frame_windows(70, None)] == [(0, 70)]
    assert list(frame_windows(0, 30)) == []


def test_windowed_filter_keeps_scale_factor_and_eps():
    gen = torch.Generator().manual_seed(1)
    mix = 50 * torch.randn(70, 12, 2, dtype=torch.complex64, generator=gen)
    V = torch.rand(70, 12, 2, 3, generator=gen) * mix.abs()[..., None]
    settings = WienerSettings(niter=2, wiener_win_len=30, scale_factor=0.5, eps=1e-3)
    got = wiener_windowed(V, mix, settings)
    for w in frame_windows(70, 30):
        expected = wiener(V[w], mix[w], 2, scale_factor=0.5, eps=1e-3)
        torch.testing.assert_close(got[w], expected, atol=0, rtol=0)
    default = wiener_windowed(V, mix, WienerSettings(niter=2, wiener_win_len=30))
    assert not torch.allclose(got, default)
