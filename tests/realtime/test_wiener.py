"""The causal Wiener filter against the offline EM (unmix.filtering)."""

from __future__ import annotations

import math

import pytest
import torch

from unmix.filtering import WienerSettings, wiener_sources
from unmix.realtime.wiener import CausalWiener, causal_wiener, initial_state


def _inputs(nb_channels: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    J, N, F = 3, 12, 9
    mix = torch.complex(torch.randn(nb_channels, N, F, generator=gen),
                        torch.randn(nb_channels, N, F, generator=gen))  # fmt: skip
    V = torch.rand(J, nb_channels, N, F, generator=gen) * mix.abs()
    return V, mix


@pytest.mark.parametrize("nb_channels", [1, 2])
@pytest.mark.parametrize("residual", [False, True])
def test_without_forgetting_the_last_frame_equals_offline_em(
    nb_channels: int, residual: bool
) -> None:
    V, mix = _inputs(nb_channels)
    settings = CausalWiener(niter=1, residual=residual, memory=math.inf)
    state = initial_state(settings, 3 + residual, nb_channels, mix.shape[-1])
    causal, _ = causal_wiener(V, mix, settings, 1.0, state)
    N = mix.shape[1]
    for n in (0, 5, N - 1):  # frame n of the causal filter = offline EM over frames 0..n
        offline = wiener_sources(
            V[:, :, : n + 1], mix[:, : n + 1], WienerSettings(niter=1, residual=residual)
        )
        torch.testing.assert_close(causal[:, :, n], offline[:, :, n], rtol=1e-4, atol=1e-5)


def test_frames_one_at_a_time_equal_all_at_once() -> None:
    V, mix = _inputs(2, seed=1)
    settings = CausalWiener(niter=2, memory=0.05)
    lam = settings.forgetting(256, 16000)
    assert 0 < lam < 1
    state = initial_state(settings, 3, 2, mix.shape[-1])
    whole, final = causal_wiener(V, mix, settings, lam, state)
    pieces = []
    for n in range(mix.shape[1]):
        y, state = causal_wiener(V[:, :, n : n + 1], mix[:, n : n + 1], settings, lam, state)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, 2), whole)
    for a, b in zip(state, final, strict=True):
        torch.testing.assert_close(a, b)


def test_niter_zero_is_frame_local() -> None:
    V, mix = _inputs(2)
    settings = CausalWiener(niter=0)
    y, state = causal_wiener(V, mix, settings, 0.9, ())
    assert state == ()
    torch.testing.assert_close(y, V * mix / mix.abs())  # magnitudes with the mixture phase


def test_em_estimates_add_up_to_the_mixture() -> None:
    V, mix = _inputs(2)
    settings = CausalWiener(niter=1, residual=True)
    y, _ = causal_wiener(V, mix, settings, 0.9, initial_state(settings, 4, 2, mix.shape[-1]))
    torch.testing.assert_close(y.sum(0), mix, rtol=1e-4, atol=1e-4)
