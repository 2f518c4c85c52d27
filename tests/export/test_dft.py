"""The two-stage (Cooley–Tukey) matrix DFTs of the export against torch's FFT: in PyTorch
and as ONNX graphs run by onnxruntime, on random and real frames, within 1e-5 of the
spectrum's (or signal's) peak; sizes that do not factorise fall back to the ONNX operators."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from unmix import audio as audio_io
from unmix.export.dft import FactorisedIrfft, FactorisedRfft, factorise, rfft_factors
from unmix.export.spectral import GraphISTFT, GraphSTFT

pytestmark = pytest.mark.usefixtures("one_thread")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def music(clip: Path) -> torch.Tensor:
    audio, _ = audio_io.read(clip)
    return torch.from_numpy(np.ascontiguousarray(audio[:, 44100 : 44100 * 3]))


@pytest.mark.parametrize(
    "n_fft,n_hop,factors",
    [
        (4096, 1024, (64, 64)),
        (2048, 512, (64, 32)),
        (1024, 512, (32, 32)),
        (4096, 2048, (64, 64)),
        (1026, 513, (38, 27)),  # an odd second factor
        (1023, 341, None),  # odd n_fft: no even first factor
        (998, 499, None),  # gcd 499 is prime: no factor of at least 8
    ],
)
def test_factorise(n_fft, n_hop, factors):
    assert factorise(n_fft, n_hop) == factors
    forward = rfft_factors(n_fft, n_hop)
    assert (forward is None) == (factors is None)
    if forward is not None:  # shorter second-stage sums for the forward transform
        assert forward[0] * forward[1] == n_fft and forward[1] <= factors[1]


def test_forward_factors_of_released_models():
    assert rfft_factors(4096, 1024) == (128, 32)
    assert rfft_factors(1024, 512) == (64, 16)


def stft(signal: torch.Tensor, n_fft: int, n_hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=torch.float64)
    spec = torch.stft(
        signal.double(), n_fft, n_hop, window=window, center=False, return_complex=True
    )
    return spec.transpose(-1, -2)  # (C, N, F)


@pytest.mark.parametrize("n_fft,n_hop", [(4096, 1024), (2048, 512), (1026, 513), (512, 128)])
def test_rfft_random_and_real_frames(n_fft, n_hop, music):
    rfft = FactorisedRfft(n_fft, n_hop, torch.hann_window(n_fft))
    noise = torch.randn(2, 6 * n_fft + 77, generator=torch.Generator().manual_seed(0))
    for signal in (noise, music):
        re, im = rfft(signal)
        expected = stft(signal, n_fft, n_hop)
        assert re.shape == expected.shape
        peak = expected.abs().max()
        assert (re - expected.real).abs().max() <= TOLERANCE * peak
        assert (im - expected.imag).abs().max() <= TOLERANCE * peak


@pytest.mark.parametrize("n_fft,n_hop", [(4096, 1024), (2048, 512), (1026, 513), (512, 128)])
def test_irfft_random_and_real_spectra(n_fft, n_hop, music):
    window = torch.hann_window(n_fft)
    irfft = FactorisedIrfft(n_fft, n_hop, window)
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(3, 5, n_fft // 2 + 1, dtype=torch.complex64, generator=generator)
    real = stft(music, n_fft, n_hop).to(torch.complex64)
    for spec in (noise, real):  # noise has imaginary parts at bins 0 and n_fft/2: ignored
        expected = torch.fft.irfft(spec.to(torch.complex128), n=n_fft) * window.double()
        frames = irfft(spec.real.contiguous(), spec.imag.contiguous())
        assert frames.shape == expected.shape
        assert (frames - expected).abs().max() <= TOLERANCE * expected.abs().max()
        transposed = irfft.transposed(spec.real.contiguous(), spec.imag.contiguous())
        assert torch.equal(transposed.permute(1, 2, 3, 0).reshape(frames.shape), frames)


class RoundTrip(torch.nn.Module):
    """``(C, T)`` → spectrum → audio, the graph's STFT and ISTFT; also returns the spectrum."""

    def __init__(self, n_fft: int, n_hop: int) -> None:
        super().__init__()
        self.stft, self.istft = GraphSTFT(n_fft, n_hop), GraphISTFT(n_fft, n_hop)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        re, im = self.stft(audio)
        return re, im, self.istft(re, im, audio)


def run_onnx(module: torch.nn.Module, audio: torch.Tensor, path: Path) -> list[np.ndarray]:
    import onnxruntime

    example = torch.randn(audio.shape[0], 5 * module.stft.n_fft)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated (unmix uses it)
        torch.onnx.export(
            module,
            (example,),
            path,
            dynamo=False,
            opset_version=17,
            input_names=["audio"],
            dynamic_axes={"audio": {1: "T"}},
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"audio": audio.numpy()})


@pytest.mark.parametrize(
    "n_fft,n_hop,factorised",
    [
        (4096, 1024, True),
        (1024, 512, True),
        (1026, 513, True),
        (1023, 341, False),
        (998, 499, False),
    ],
)
def test_graph_stft_istft_in_onnxruntime(n_fft, n_hop, factorised, music, tmp_path):
    """Exported and run by onnxruntime at another length than traced: the centred STFT
    equals torch.stft, the ISTFT inverts it; matrix products or the ONNX DFT operators."""
    module = RoundTrip(n_fft, n_hop).eval()
    assert (module.stft.rfft is not None) == factorised
    assert (module.istft.irfft is not None) == factorised
    re, im, audio = run_onnx(module, music, tmp_path / "roundtrip.onnx")
    window = torch.hann_window(n_fft, dtype=torch.float64)
    expected = torch.stft(
        music.double(),
        n_fft,
        n_hop,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    ).transpose(-1, -2)
    peak = float(expected.abs().max())
    # onnxruntime's own operators are less exact at sizes that are not powers of two
    tolerance = TOLERANCE if factorised else 1e-3
    assert np.abs(re - expected.real.numpy()).max() <= tolerance * peak
    assert np.abs(im - expected.imag.numpy()).max() <= tolerance * peak
    assert np.abs(audio - music.numpy()).max() <= tolerance
    ops = {node.op_type for node in onnx.load(tmp_path / "roundtrip.onnx").graph.node}
    assert ("DFT" in ops or "STFT" in ops) != factorised
