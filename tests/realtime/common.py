"""Tiny random models for the real-time tests."""

from __future__ import annotations

import numpy as np

from unmix.config import ModelConfig
from unmix.filtering import WienerSettings
from unmix.models.umx import UMX
from unmix.separator import Separator

from ..helpers import randomize

#: (sample_rate, n_fft, n_hop, model channels): a 44.1 kHz and a 16 kHz configuration
CONFIGS = {
    "44k-stereo": (44100, 1024, 256, 2),
    "16k-mono": (16000, 512, 128, 1),
}


def tiny_separator(
    key: str = "44k-stereo", unidirectional: bool = True, niter: int = 1, seed: int = 0,
    residual: bool = False,
) -> Separator:  # fmt: skip
    """A random two-target UMX (hidden 16, 2 layers) as a frozen Separator."""
    rate, n_fft, n_hop, channels = CONFIGS[key]
    cfg = ModelConfig(
        targets=("vocals", "drums"), sample_rate=rate, n_fft=n_fft, n_hop=n_hop,
        nb_channels=channels, hidden_size=16, nb_layers=2, unidirectional=unidirectional,
        max_bin=n_fft // 4,
    )  # fmt: skip
    model = UMX.from_config(cfg)
    randomize(model, seed)
    return Separator(model, cfg, WienerSettings(niter=niter, residual=residual)).freeze()


def music_like(nb_channels: int, n: int, seed: int = 0) -> np.ndarray:
    """Noise with a few tones, ``(nb_channels, n)`` float32 around -10 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    tones = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 330.0, 1250.0)) / 3
    x = 0.3 * tones + 0.1 * rng.standard_normal((nb_channels, n))
    return x.astype(np.float32)


def run_stream(stream: object, audio: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Feed ``audio`` in blocks of ``sizes`` (which add up to its length), then flush."""
    outs, start = [], 0
    for size in sizes:
        out = stream.process(audio[:, start : start + size])  # type: ignore[attr-defined]
        assert out.shape[-1] == size  # as many samples out as in
        outs.append(out)
        start += size
    assert start == audio.shape[1]
    outs.append(stream.flush())  # type: ignore[attr-defined]
    return np.concatenate(outs, -1)


def random_sizes(total: int, seed: int, largest: int = 3000) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(int(min(rng.integers(1, largest), total - sum(sizes))))
    return sizes


def fixed_sizes(total: int, size: int) -> list[int]:
    return [size] * (total // size) + ([total % size] if total % size else [])


def impulse_delay(stream: object, seed: int, largest: int) -> int:
    """Where the first non-zero output sample of a one-channel impulse lands (pushed in
    random block sizes)."""
    impulse = np.zeros((1, 5000), np.float32)
    impulse[0, 0] = 1.0
    out = run_stream(stream, impulse, random_sizes(5000, seed=seed, largest=largest))
    return int(np.flatnonzero(np.abs(out).max(axis=(0, 1)) > 0)[0])
