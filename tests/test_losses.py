"""The X-UMX multi-domain combination loss: hand-computed values, the documented
combinations and weights, and a short training run of a tiny X-UMX that lowers it."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
import torch
from torch import Tensor, nn

from unmix.config import ModelConfig
from unmix.losses import (
    XUMXLoss,
    combination_matrix,
    combinations_of,
    frequency_loss,
    time_loss,
    weighted_sdr,
)
from unmix.models.xumx import XUMX
from unmix.transforms import STFT

TINY = ModelConfig(n_fft=256, n_hop=64, hidden_size=16, nb_layers=1, max_bin=64, arch="xumx")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_four_targets_give_the_fourteen_documented_combinations():
    combos = combinations_of(4)
    assert len(combos) == 14
    assert combos[:4] == [(0,), (1,), (2,), (3,)]
    assert set(combos[4:10]) == set(combinations(range(4), 2))
    assert set(combos[10:]) == set(combinations(range(4), 3))
    assert (0, 1, 2, 3) not in combos
    assert combinations_of(1) == [(0,)]
    assert combinations_of(2) == [(0,), (1,)]
    assert combination_matrix(4).sum().item() == 4 + 12 + 12


def test_frequency_loss_equals_the_explicit_mean_over_combinations():
    gen = torch.Generator().manual_seed(0)
    est = torch.rand(2, 2, 5, 3, 4, generator=gen)
    ref = torch.rand(2, 2, 5, 3, 4, generator=gen)
    explicit = torch.stack(
        [
            ((est[..., list(c)].sum(-1) - ref[..., list(c)].sum(-1)) ** 2).mean()
            for c in combinations_of(4)
        ]
    ).mean()
    got = frequency_loss(est, ref, combination_matrix(4))
    torch.testing.assert_close(got, explicit)


def _t(*values: float) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_weighted_sdr_hand_computed_cases():
    y, x = _t(1, 0), _t(1, 1)  # reference and mixture: noise n = (0, 1), alpha = 1/2
    # perfect estimate: both cosines are 1
    assert weighted_sdr(y, y, x).item() == pytest.approx(-1.0, abs=1e-9)
    # estimate (2, 0): cos(ŷ, y) = 1, n̂ = (-1, 1), cos(n̂, n) = 1/√2
    assert weighted_sdr(_t(2, 0), y, x).item() == pytest.approx(-0.5 - 0.5 / math.sqrt(2))
    # estimate (0, 1): orthogonal to y, n̂ = (1, 0) orthogonal to n
    assert weighted_sdr(_t(0, 1), y, x).item() == pytest.approx(0.0, abs=1e-9)
    # sign-flipped estimate: cos(ŷ, y) = -1, n̂ = (2, 1), cos(n̂, n) = 1/√5
    expected = 0.5 - 0.5 * (1 / math.sqrt(5))
    assert weighted_sdr(_t(-1, 0), y, x).item() == pytest.approx(expected)


def test_weighted_sdr_of_a_silent_source():
    x = _t(0.5, -1.0, 2.0)
    silent = torch.zeros(3, dtype=torch.float64)
    # alpha = 0: only the noise term counts; estimating silence is perfect
    assert weighted_sdr(silent, silent, x).item() == pytest.approx(-1.0, abs=1e-9)
    # estimating the whole mixture leaves n̂ = 0: cos(0, n) = 0
    assert weighted_sdr(x, silent, x).item() == pytest.approx(0.0, abs=1e-9)


def test_time_loss_ignores_the_trimmed_edges():
    gen = torch.Generator().manual_seed(1)
    targets = torch.randn(2, 4, 2, 1000, generator=gen)
    mix = targets.sum(1)
    m = combination_matrix(4)
    assert time_loss(targets, targets, mix, m).item() == pytest.approx(0.0, abs=1e-6)
    noisy = targets.clone()
    noisy[..., :200] += torch.randn(2, 4, 2, 200, generator=gen)
    noisy[..., 800:] = 0
    assert time_loss(noisy, targets, mix, m).item() == pytest.approx(0.0, abs=1e-6)
    noisy[..., 500] += 1.0
    assert time_loss(noisy, targets, mix, m).item() > 1e-4
    with pytest.raises(Exception, match="too short"):
        time_loss(targets[..., :400], targets, mix, m)


class GainModel(nn.Module):
    """Estimates ``g_t · |X|`` for fixed gains (a stand-in network)."""

    def __init__(self, gains: list[float]) -> None:
        super().__init__()
        self.gains = torch.tensor(gains)

    def forward(self, mag: Tensor) -> Tensor:
        return mag.unsqueeze(-1) * self.gains


def _gain_sources(gains: list[float], seconds: float = 0.5) -> tuple[Tensor, Tensor]:
    """Sources ``s_t = g_t · x``: their magnitudes are ``g_t·|X|`` and phases that of x."""
    x = 0.3 * torch.randn(2, 2, int(8000 * seconds), generator=torch.Generator().manual_seed(2))
    targets = torch.stack([g * x for g in gains], dim=1)
    return x, targets


def test_perfect_estimate_with_a_silent_source_has_zero_loss():
    gains = [0.6, 0.4, 0.0, 0.0]  # bass and other silent (config order vocals, drums, bass, other)
    mix, targets = _gain_sources(gains)
    loss = XUMXLoss(TINY)(GainModel(gains), mix, targets)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)


def test_silent_estimate_matches_the_closed_form():
    """All estimates 0 for sources g_t·x: per combination S with G = Σ_{t∈S} g_t,
    L_freq = G²·mean|X|², wSDR = -(1 - α)·sign(1 - G) with α = G² / (G² + (1 - G)²)."""
    gains = [0.5, 0.3, 0.2, 0.0]
    mix, targets = _gain_sources(gains)
    loss = XUMXLoss(TINY, mcoef=10.0)(GainModel([0.0] * 4), mix, targets)
    power = (STFT(256, 64, center=True)(mix).abs() ** 2).mean().item()
    freq, wsdr = [], []
    for combo in combinations_of(4):
        g = sum(gains[j] for j in combo)
        freq.append(g * g * power)
        alpha = g * g / (g * g + (1 - g) ** 2)
        wsdr.append(-(1 - alpha) * (1.0 if g < 1 else 0.0))
    expected = 10.0 * (1 + sum(wsdr) / 14) + sum(freq) / 14
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_wrong_shapes_are_refused():
    loss = XUMXLoss(TINY)
    with pytest.raises(ValueError, match="targets must have shape"):
        loss(GainModel([1.0] * 4), torch.zeros(1, 2, 4000), torch.zeros(1, 3, 2, 4000))


def _synthetic_batch(nb: int, length: int, seed: int) -> tuple[Tensor, Tensor]:
    """Four sources with distinct spectra: low sine, clicks, mid harmonics, high noise."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 8000.0
    batch = []
    for _ in range(nb):
        f0 = 60 + 40 * torch.rand(1, generator=gen)
        f1 = 300 + 200 * torch.rand(1, generator=gen)
        bass = torch.sin(2 * math.pi * f0 * t)
        drums = (torch.rand(length, generator=gen) < 0.002).float() * 3
        vocals = sum(torch.sin(2 * math.pi * k * f1 * t) / k for k in (1, 2, 3))
        noise = torch.randn(length, generator=gen)
        other = noise - torch.roll(noise, 1)  # high-pass
        sources = torch.stack([vocals, drums, bass, 0.3 * other])  # config order
        gains = 0.25 + torch.rand(4, 1, generator=gen)
        batch.append(torch.stack([sources * gains, sources * gains.flip(0)], dim=1))
    targets = 0.2 * torch.stack(batch)  # (S, J, C, T)
    return targets.sum(1), targets


def test_short_training_run_lowers_the_loss():
    torch.manual_seed(0)
    config = TINY.with_(nb_layers=2)
    model = XUMX.from_config(config)
    objective = XUMXLoss(config)
    mix, targets = _synthetic_batch(4, 4000, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            value = objective(model, mix, targets).item()
        model.train()
        return value

    before = evaluate()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = objective(model, mix, targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = evaluate()
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert after < 0.8 * before
