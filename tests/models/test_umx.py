"""UMX's forward without a temporary per target: OpenUnmix.forward_into writes the same
values as forward, bit for bit, into any strides; with autograd the branches' outputs are
copied as before, so training still gets gradients, on one thread or several."""

from __future__ import annotations

import pytest
import torch

from unmix.config import ModelConfig
from unmix.models.umx import UMX, OpenUnmix

from ..helpers import randomize

TINY = ModelConfig(n_fft=256, n_hop=64, hidden_size=16, nb_layers=2, max_bin=80)


def _umx() -> UMX:
    nets = {}
    for k, target in enumerate(("vocals", "drums", "bass")):
        nets[target] = OpenUnmix.from_config(TINY)
        randomize(nets[target], 40 + k)
    return UMX(nets).eval()


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_forward_into_is_forward_bit_for_bit():
    net = _umx().branch("drums")
    x = torch.rand(2, 2, TINY.nb_bins, 11)
    with torch.inference_mode():
        expected = net(x)  # (S, C, F, N)
        buffer = torch.full((2, 3, 2, 11, TINY.nb_bins), float("nan"))  # (S, J, C, N, F)
        net.forward_into(x, buffer[:, 1])
        assert torch.equal(buffer[:, 1], expected.transpose(-1, -2))
        assert torch.isnan(buffer[:, 0]).all() and torch.isnan(buffer[:, 2]).all()


def test_umx_without_autograd_is_the_branches_stacked(threads):
    model = _umx()
    x = torch.rand(1, 2, TINY.nb_bins, 13)
    with torch.inference_mode():
        expected = torch.stack([model.branch(t)(x) for t in model.targets], -1)
        assert torch.equal(model(x), expected)
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def test_umx_with_autograd_gives_the_same_values_and_gradients(threads):
    model = _umx().train()
    x = torch.rand(1, 2, TINY.nb_bins, 13)
    y = model(x)
    assert y.requires_grad
    y.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        expected = model(x)
    # PyTorch's LSTM kernels differ by float rounding with and without autograd
    torch.testing.assert_close(model(x).detach(), expected, rtol=1e-5, atol=1e-6)
