"""Shared pieces of the separation benchmarks: the same random-weight umxhq-config models for
unmix and the reference (openunmix 1.3.0), real music of any length, stage timers.

Only benchmarks import this module (it imports openunmix, a test/benchmark-only oracle).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from unmix import audio as audio_io
from unmix.config import CONFIGS, ModelConfig

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the oracle helpers live with the tests
    sys.path.insert(0, str(REPO))
from tests.helpers import import_openunmix, reference_state_dicts  # noqa: E402

PREVIEW = REPO.parent / "shared" / "data" / "musdb18-preview" / "train"
CONFIG: ModelConfig = CONFIGS["umxhq"]


def write_model_folder(folder: Path, seed: int = 0) -> Path:
    """Random-weight umxhq-config weights as ``<target>-<hash>.pth`` (the official layout),
    created with openunmix's own network so both implementations load the same file. The
    weights are the test suite's (``tests/helpers.py``): scaled so that every layer, the LSTM
    included, shapes the output — seams would otherwise look better than they are."""
    folder.mkdir(parents=True, exist_ok=True)
    states = reference_state_dicts(import_openunmix(), CONFIG, seed=seed, legacy=False)
    for target, state in states.items():
        torch.save(state, folder / f"{target}-0123abcd.pth")
    return folder


def reference_separator(folder: Path, niter: int = 1, wiener_win_len: int = 300) -> torch.nn.Module:
    """openunmix's Separator with the weights of ``folder``."""
    openunmix = import_openunmix()
    models = {}
    for target in CONFIG.targets:
        net = openunmix.model.OpenUnmix(
            nb_bins=CONFIG.nb_bins,
            nb_channels=CONFIG.nb_channels,
            hidden_size=CONFIG.hidden_size,
            max_bin=CONFIG.max_bin,
        )
        state = torch.load(next(folder.glob(f"{target}-*.pth")), weights_only=True)
        net.load_state_dict(state)
        models[target] = net.eval()
    sep = openunmix.model.Separator(
        models,
        niter=niter,
        wiener_win_len=wiener_win_len,
        sample_rate=CONFIG.sample_rate,
        n_fft=CONFIG.n_fft,
        n_hop=CONFIG.n_hop,
        nb_channels=CONFIG.nb_channels,
    )
    sep.freeze()
    return sep.eval()


def music_blocks(seconds: float, rate: int = 44100) -> Iterator[np.ndarray]:
    """Real music of the requested length: the MUSDB18 preview mixtures back to back,
    looped (with the polarity flipped on every other pass) when more is asked for."""
    clips = sorted(PREVIEW.glob("*.stem.mp4")) or [REPO / "examples" / "nightowl-preview.m4a"]
    remaining = int(round(seconds * rate))
    loop = 0
    while remaining > 0:
        for clip in clips:
            audio, clip_rate = audio_io.read(clip)
            if clip_rate != rate:
                audio = audio_io.resample(audio, clip_rate, rate)
            block = audio[:, :remaining] * (1.0 if loop % 2 == 0 else -1.0)
            remaining -= block.shape[1]
            yield block
            if remaining <= 0:
                return
        loop += 1


def write_music(path: Path, seconds: float) -> Path:
    """A float WAV of real music, written block by block."""
    with sf.SoundFile(path, "w", 44100, 2, "FLOAT", format="WAV") as f:
        for block in music_blocks(seconds):
            f.write(block.T)
    return path


def music(seconds: float) -> np.ndarray:
    """``(2, T)`` real music in memory."""
    return np.concatenate(list(music_blocks(seconds)), axis=1)


class StageTimer:
    """Wall time per stage, from forward hooks and wrapped functions."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def hook(self, module: torch.nn.Module, stage: str) -> None:
        module.register_forward_pre_hook(lambda *_: self._start(stage))
        module.register_forward_hook(lambda *_: self._stop(stage))

    def wrap(self, fn, stage: str):  # type: ignore[no-untyped-def]
        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            self._start(stage)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stop(stage)

        return timed

    def _start(self, stage: str) -> None:
        self._started[stage] = time.perf_counter()

    def _stop(self, stage: str) -> None:
        elapsed = time.perf_counter() - self._started.pop(stage)
        self.totals[stage] = self.totals.get(stage, 0.0) + elapsed


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def machine() -> dict[str, str]:
    """CPU model, cores, memory and software versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kb / 2**20:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    import av
    import soxr

    import unmix

    return {
        "cpu": cpu,
        "cores": str(len(__import__("os").sched_getaffinity(0))),
        "memory": memory,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "av": av.__version__,
        "soxr": soxr.__version__,
        "unmix": unmix.__version__,
        "openunmix": _version("openunmix"),
    }


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def available_memory() -> int:
    """``MemAvailable`` in bytes (0 if unknown)."""
    try:
        return int(Path("/proc/meminfo").read_text().split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return 0
