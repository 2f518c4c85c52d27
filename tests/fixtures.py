"""Test data built at test time from the bundled example clip, so that a fresh clone needs
nothing beside it: real music (``examples/nightowl-preview.m4a``, the mixture of the MUSDB18
preview of "Night Owl", CC BY-NC-SA, see ``examples/README.md``) and small MUSDB18-style
multitracks derived from it.

A multitrack's four stems are the clip, circularly shifted by a different amount per stem
(so the stems are different music, nearly uncorrelated) and shaped by smooth, overlapping
filters (so each has the spectral character of its name: a low bass, a bright drum part, a
mid-range vocal and a broad "other"). The mixture is their sum, as in MUSDB18. The stems
keep the AAC band limit of the clip, and the ``.stem.mp4`` writer codes them with AAC again,
as MUSDB18's stems are.

Only numpy and PyAV are used (not the package under test).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "nightowl-preview.m4a"

#: stream order of a MUSDB18 ``.stem.mp4`` (``unmix.audio.STEM_NAMES``)
STEM_ORDER = ("mixture", "drums", "bass", "other", "vocals")
RATE = 44100
#: FFmpeg AAC encoder: mid/side always, no intensity stereo, no perceptual noise substitution
AAC_OPTIONS = {"aac_ms": "1", "aac_is": "0", "aac_pns": "0"}


def decode(path: Path) -> np.ndarray:
    """The first audio stream of ``path``: ``(nb_channels, nb_samples)`` float32."""
    blocks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            blocks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _gains(freqs: np.ndarray) -> dict[str, np.ndarray]:
    """Smooth frequency responses of the four stems, each at least 0.2 everywhere: no stem
    vanishes in any band, so BSSEval's systems are as well (barely) conditioned as on
    MUSDB18's stems (with a floor of 0.05, SIR moved 3x more under rounding)."""
    hz = np.maximum(freqs, 1.0)
    octave = np.log2(hz)

    def bump(centre_hz: float, width_octaves: float) -> np.ndarray:
        return np.exp(-0.5 * ((octave - np.log2(centre_hz)) / width_octaves) ** 2)

    return {
        "bass": 0.2 + bump(90, 1.0),
        "vocals": 0.2 + bump(1000, 0.9),
        "drums": 0.2 + 2.5 / (1 + (2000 / hz) ** 2),
        "other": 0.2 + 0.6 * bump(400, 1.5),
    }


def make_stems(music: np.ndarray, seed: int, mono_bass: bool = False) -> dict[str, np.ndarray]:
    """Mixture and four stems from ``music`` ``(2, n)``; ``seed`` picks the shifts.
    ``mono_bass``: the bass is the same in both channels, as in many MUSDB18 tracks.

    Returns:
        ``{name: (2, n) float32}`` for every name of :data:`STEM_ORDER`; the mixture is the
        sum of the stems (float32 rounding aside).
    """
    n = music.shape[1]
    rng = np.random.default_rng(seed)
    shifts = (np.arange(4) * n // 4 + rng.integers(0, n // 4)) % n
    spectrum_freqs = np.fft.rfftfreq(n, 1 / RATE)
    stems: dict[str, np.ndarray] = {}
    for (name, gain), shift in zip(_gains(spectrum_freqs).items(), shifts, strict=True):
        shifted = np.roll(music.astype(np.float64), int(shift), axis=1)
        stems[name] = np.fft.irfft(np.fft.rfft(shifted, axis=1) * gain, n, axis=1)
    if mono_bass:
        stems["bass"][:] = stems["bass"].mean(axis=0)
    peak = np.abs(sum(stems.values())).max()
    scale = 0.8 / peak  # the mixture peaks at 0.8: no clipping in any file
    out = {name: (x * scale).astype(np.float32) for name, x in stems.items()}
    out["mixture"] = np.sum([out[k] for k in ("drums", "bass", "other", "vocals")], axis=0)
    return {name: out[name] for name in STEM_ORDER}


def write_stem_mp4(path: Path, stems: dict[str, np.ndarray], bit_rate: int = 256000) -> None:
    """A MUSDB18-style ``.stem.mp4``: one stereo AAC stream per name of :data:`STEM_ORDER`,
    titled with its name, starting exactly at the first sample (an edit list skips the
    encoder's priming). Mid/side coding without intensity stereo or noise substitution: a
    stem with equal channels decodes to exactly equal channels (as MUSDB18's mono stems
    do)."""
    with av.open(str(path), mode="w", format="mp4") as container:
        streams = []
        for name in STEM_ORDER:
            stream = container.add_stream("aac", rate=RATE, layout="stereo", options=AAC_OPTIONS)
            stream.bit_rate = bit_rate
            stream.metadata["title"] = name
            stream.metadata["handler_name"] = name
            streams.append(stream)
        block = 8192
        for start in range(0, stems["mixture"].shape[1], block):
            for stream, name in zip(streams, STEM_ORDER, strict=True):
                data = np.ascontiguousarray(stems[name][:, start : start + block])
                frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
                frame.sample_rate = RATE
                frame.pts = start
                frame.time_base = Fraction(1, RATE)
                for packet in stream.encode(frame):
                    container.mux(packet)
        for stream in streams:
            for packet in stream.encode(None):
                container.mux(packet)


def build_musdb(
    root: Path, names: list[str], music: np.ndarray, mono_bass: tuple[str, ...] = ()
) -> Path:
    """A MUSDB18 folder ``root/train/<name>.stem.mp4`` per name (the names of
    ``unmix.tracks.VALIDATION_TRACKS`` make the validation split); track ``k`` in name order
    is :func:`make_stems` with seed ``k``, with a mono bass where named in ``mono_bass``.
    Returns ``root``."""
    (root / "train").mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(sorted(names)):
        stems = make_stems(music, seed, mono_bass=name in mono_bass)
        write_stem_mp4(root / "train" / f"{name}.stem.mp4", stems)
    return root
