"""The three-stage inverse DFT with its overlap-add (``unmix.export.dft3``) against torch's
inverse FFT and a plain overlap-add loop, in PyTorch and run by onnxruntime."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from unmix.export.dft3 import ThreeStageIrfft, three_factors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "n_fft,n_hop,factors",
    [
        (4096, 1024, (32, 8, 16)),
        (2048, 512, (16, 8, 16)),
        (1024, 512, (16, 8, 8)),
        (512, 128, (16, 4, 8)),
        (4096, 1536, None),  # the hop does not divide n_fft
        (1026, 513, None),  # 1026 = 2·27·19: no three factors of at least 4 with an even one
    ],
)
def test_factors(n_fft, n_hop, factors):
    assert three_factors(n_fft, n_hop) == factors
    if factors:
        na, nb, nc = factors
        assert na * nb * nc == n_fft and na % (n_fft // n_hop) == 0 and nc % 2 == 0


def reference(spec: torch.Tensor, n_fft: int, n_hop: int) -> torch.Tensor:
    """irfft, window, overlap-add frame by frame, in float64."""
    window = torch.hann_window(n_fft, dtype=torch.float64)
    frames = torch.fft.irfft(spec.to(torch.complex128), n=n_fft) * window
    batch, nb_frames, _ = frames.shape
    out = torch.zeros(batch, (nb_frames - 1) * n_hop + n_fft, dtype=torch.float64)
    for f in range(nb_frames):
        out[:, f * n_hop : f * n_hop + n_fft] += frames[:, f]
    return out


@pytest.mark.parametrize("n_fft,n_hop", [(4096, 1024), (2048, 512), (1024, 512), (512, 128)])
def test_equals_irfft_and_overlap_add(n_fft, n_hop):
    gen = torch.Generator().manual_seed(n_fft)
    spec = torch.randn(3, 7, n_fft // 2 + 1, dtype=torch.complex64, generator=gen)
    module = ThreeStageIrfft(n_fft, n_hop, torch.hann_window(n_fft))
    got = module(spec.real.contiguous(), spec.imag.contiguous())
    expected = reference(spec, n_fft, n_hop)
    assert got.shape == expected.shape
    assert (got.double() - expected).abs().max() <= 1e-6 * expected.abs().max()
    first = spec.transpose(0, 1)  # (N, B, F): the chunk filter's layout
    got = module(first.real.contiguous(), first.imag.contiguous(), frames_first=True)
    assert got.shape == expected.shape
    assert (got.double() - expected).abs().max() <= 1e-6 * expected.abs().max()


def test_in_onnxruntime_at_another_frame_count(tmp_path):
    import onnxruntime

    n_fft, n_hop = 4096, 1024
    module = ThreeStageIrfft(n_fft, n_hop, torch.hann_window(n_fft)).eval()
    example = torch.randn(2, 5, n_fft // 2 + 1)
    path = tmp_path / "irfft3.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example, example),
            path,
            dynamo=False,
            opset_version=17,
            input_names=["re", "im"],
            dynamic_axes={"re": {0: "b", 1: "n"}, "im": {0: "b", 1: "n"}},
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(3)
    spec = torch.randn(4, 11, n_fft // 2 + 1, dtype=torch.complex64, generator=gen)
    (got,) = session.run(None, {"re": spec.real.numpy(), "im": spec.imag.numpy()})
    expected = reference(spec, n_fft, n_hop).numpy()
    assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()
