"""Where the time of one separation goes, stage by stage (for ``bench_precision.py``).

The stages of ``separate_file`` on one segment, run one after the other with the
separator's own methods and timed on the thread's CPU clock on one thread (what each stage
costs, less of what the neighbours on a shared machine take) or on the wall clock on
several (the worker threads' time is not on the calling thread's clock): decode the file; STFT and
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
from unmix.heap import keep_freed_memory
from unmix.separator import Separator
from unmix.transforms import magnitude

STAGES = ("decode", "STFT", "networks", "Wiener + ISTFT", "write")
T = TypeVar("T")


def _timed(clock: dict[str, float], stage: str, fn: Callable[[], T]) -> T:
    timer = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    start = timer()
    result = fn()
    clock[stage] = timer() - start
    return result


def split_once(sep: Separator, wav: Path, folder: Path) -> dict[str, float]:
    """Seconds per stage of one separation of ``wav`` (one segment): thread CPU seconds on
    one PyTorch thread, wall seconds on several."""
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

    def write() -> None:  # as separate_file: the files side by side on several threads
        with audio_io.StemWriter(
            folder, sep.output_names, "wav", rate, audio.shape[0], workers=torch.get_num_threads()
        ) as w:
            w.write(audio, stems)
            w.commit()

    _timed(clock, "write", write)
    return clock


def split(seps: dict[str, Separator], wav: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Per separator, median seconds per stage (:func:`split_once`) over ``repeats`` runs
    after one warm-up, the separators taking turns."""
    keep_freed_memory()  # as Separator.forward does
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in seps}
    with tempfile.TemporaryDirectory(prefix="precision-split-") as tmp:
        for k in range(repeats + 1):
            for name, sep in seps.items():
                runs[name].append(split_once(sep, wav, Path(tmp) / f"{name}-{k}"))
    return {
        name: {stage: statistics.median(r[stage] for r in done[1:]) for stage in STAGES}
        for name, done in runs.items()
    }
