"""Where the time of one separation goes, stage by stage (for ``bench_precision.py``).

The stages of ``separate_file`` on one segment, run one after the other with the
separator's own methods and timed on the thread's CPU clock (one thread: what each stage
costs, less of what the neighbours on a shared machine take): decode the file; STFT and
magnitude (the model input); the networks (``Separator.source_magnitudes``: the model's forward, its
elementwise steps and copies included); the Wiener filter, inverse FFT and overlap-add
(``Separator.wiener_istft``); writing four float WAV stems.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from unmix import audio as audio_io
from unmix.separator import Separator
from unmix.transforms import magnitude

STAGES = ("decode", "STFT", "networks", "Wiener + ISTFT", "write")
T = TypeVar("T")


def _timed(clock: dict[str, float], stage: str, fn: Callable[[], T]) -> T:
    start = time.thread_time()
    result = fn()
    clock[stage] = time.thread_time() - start
    return result


def split_once(sep: Separator, wav: Path, folder: Path) -> dict[str, float]:
    """Thread CPU seconds per stage of one separation of ``wav`` (one segment)."""
    clock: dict[str, float] = {}
    audio, rate = _timed(clock, "decode", lambda: audio_io.read(wav))
    with torch.inference_mode():
        x = torch.from_numpy(audio)[None]

        def transform() -> tuple[torch.Tensor, torch.Tensor]:
            spec = sep.stft(x)
            return spec, magnitude(spec, mono=sep.config.nb_channels == 1)

        spec, X = _timed(clock, "STFT", transform)
        V = _timed(clock, "networks", lambda: sep.source_magnitudes(X))
        stems = _timed(
            clock,
            "Wiener + ISTFT",
            lambda: np.ascontiguousarray(sep.wiener_istft(V, spec, X, x.shape[-1])[0].numpy()),
        )

    def write() -> None:
        with audio_io.StemWriter(folder, sep.output_names, "wav", rate, audio.shape[0]) as w:
            w.write(audio, stems)
            w.commit()

    _timed(clock, "write", write)
    return clock


def split(sep: Separator, wav: Path, repeats: int) -> dict[str, float]:
    """Median thread CPU seconds per stage over ``repeats`` runs (after one warm-up)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="precision-split-") as tmp:
        for k in range(repeats + 1):
            runs.append(split_once(sep, wav, Path(tmp) / str(k)))
    return {stage: statistics.median(r[stage] for r in runs[1:]) for stage in STAGES}
