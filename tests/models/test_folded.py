"""unmix.models.folded: OpenUnmix in bfloat16 on the CPU with the batch norms and the output
affine folded into the weights: the same network (exact algebra in float32), close to
float32 in bfloat16, only where it applies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmix.config import ModelConfig
from unmix.models import folded
from unmix.models.umx import UMX, OpenUnmix
from unmix.precision import cpu_bf16_support

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")
BF16 = pytest.mark.skipif(not cpu_bf16_support()[0], reason="this CPU has no native bf16")
TINY = ModelConfig(n_fft=256, n_hop=64, hidden_size=16, nb_layers=2, max_bin=80)


def _net(seed: int = 3, channels: int = 2, bias: bool = False) -> OpenUnmix:
    net = OpenUnmix.from_config(TINY.with_(nb_channels=channels))
    if bias:  # not in UMX, but fold() must not drop one
        net.fc3 = torch.nn.Linear(net.fc3.in_features, net.fc3.out_features)
    randomize(net, seed)
    return net.eval()


def _sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    ref = reference.double()
    ratio = float(ref.square().sum()) / float((ref - estimate.double()).square().sum())
    return 10 * float(np.log10(ratio))


def _folded(net: OpenUnmix, x: torch.Tensor) -> torch.Tensor:
    """forward_into through the folded path, as (S, C, F, N) like net(x)."""
    S, C, F, N = x.shape
    out = torch.empty(S, C, N, F)
    folded.forward_into(net, x.permute(3, 0, 1, 2), out.permute(2, 0, 1, 3))
    return out.transpose(-1, -2)


@pytest.mark.parametrize(("channels", "bias"), [(2, False), (1, False), (2, True)])
def test_the_folding_is_exact_algebra(monkeypatch, channels, bias):
    """With the folded path's type set to float32, it is the plain network to float32
    rounding: batch norms, input and output affine all folded correctly."""
    net = _net(channels=channels, bias=bias)
    monkeypatch.setattr(folded, "DTYPE", torch.float32)
    x = torch.rand(1, channels, TINY.nb_bins, 9) * 3
    with torch.inference_mode():
        torch.testing.assert_close(_folded(net, x), net(x), rtol=1e-5, atol=1e-6)


@BF16
def test_bf16_folded_is_closer_to_float32_than_plain_autocast():
    nets = {t: _net(seed=10 + k) for k, t in enumerate(("vocals", "drums"))}
    model = UMX(nets).eval()
    x = torch.rand(1, 2, TINY.nb_bins, 200) * 2
    with torch.inference_mode():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(x)  # UMX.forward takes the folded path here
            plain = torch.stack([net(x) for net in nets.values()], -1)
    assert fast.dtype == torch.float32
    assert not torch.equal(fast, plain)  # the folded path did run
    assert _sdr(reference, fast) > 45.0
    assert _sdr(reference, fast) > _sdr(reference, plain)


@BF16
def test_the_weights_are_read_at_each_call():
    net = _net()
    x = torch.rand(1, 2, TINY.nb_bins, 50)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = _folded(net, x)
        with torch.inference_mode(False), torch.no_grad():
            net.bn3.running_var.mul_(4.0)
            net.output_mean.add_(0.5)
        after = _folded(net, x)
        assert _sdr(net(x).float(), after) > 35.0
    assert not torch.allclose(before, after)


def test_it_applies_only_to_bf16_inference_on_the_cpu():
    net = _net()
    x = torch.rand(9, 1, 2, TINY.nb_bins)
    with torch.inference_mode():
        assert not folded.applies(net, x)  # float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert folded.applies(net, x)
            assert not folded.applies(net, x.to("meta"))
            assert not folded.applies(net.train(), x)
    net.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not folded.applies(net, x)  # autograd records: the plain network
    with torch.autocast("cpu", dtype=torch.float16), torch.no_grad():
        assert not folded.applies(net, x)
