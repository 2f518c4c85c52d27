"""The worker: one thread that separates queued jobs one at a time with the CLI's engine.

Separation goes through :func:`unmix.engine.separate_file` (streaming, bounded memory,
atomic stem files), so a job's stems equal those of ``unmix separate`` on the same file.
"""

from __future__ import annotations

import errno
import logging
import shutil
import threading
from collections.abc import Callable, Sequence

import torch

from .. import audio as audio_io
from ..config import ModelConfig
from ..engine import SegmentPlan, separate_file
from ..ensemble import Ensemble
from ..errors import UnmixError
from ..filtering import WienerSettings
from ..models.contract import SeparationModel
from ..precision import DEFAULT_PRECISION, Precision
from ..separator import Separator
from .jobs import Job, JobStore

log = logging.getLogger("unmix.web")

#: bytes per sample and channel an output format needs at most (for the free-space check)
OUTPUT_BYTES = {"wav": 4, "flac": 3, "mp3": 1}
#: space kept free on the jobs disk besides a job's estimated stems (bytes)
DISK_MARGIN = 64 << 20


class Cancelled(Exception):
    """The job was deleted while it ran."""


class Separators:
    """The loaded model (once) and one :class:`Separator` per requested target tuple.

    ``members`` (name, config, model) make it an ensemble (``--model a+b``): each target
    tuple gets an :class:`~unmix.ensemble.Ensemble` of the members' separators, and
    ``config``/``model`` are the first member's. ``precision`` is what the networks run
    in (:mod:`unmix.precision`, checked against ``device`` by the caller).
    """

    def __init__(
        self, config: ModelConfig, model: SeparationModel, wiener: WienerSettings,
        device: torch.device,
        members: Sequence[tuple[str, ModelConfig, SeparationModel]] = (),
        precision: Precision = DEFAULT_PRECISION,
    ) -> None:  # fmt: skip
        self.config = config
        self.model = model
        self.wiener = wiener
        self.device = device
        self.members = tuple(members)
        self.precision = precision
        self._cache: dict[tuple[str, ...], Separator] = {}

    @property
    def targets(self) -> tuple[str, ...]:
        """Every target of the model, in order."""
        return tuple(self.config.targets)

    def get(self, targets: tuple[str, ...]) -> Separator:
        """The separator for ``targets`` (shares the model's weights), as ``--targets`` does."""
        if targets not in self._cache:
            if self.members:
                seps = [self._single(c, m, targets) for _, c, m in self.members]
                names = [name for name, _, _ in self.members]
                self._cache[targets] = Ensemble(seps, names=names).freeze()
            else:
                self._cache[targets] = self._single(self.config, self.model, targets)
        return self._cache[targets]

    def _single(
        self, config: ModelConfig, model: SeparationModel, targets: tuple[str, ...]
    ) -> Separator:
        net = model if targets == tuple(config.targets) else model.select_targets(targets)
        config = config.with_(targets=net.targets)
        separator = Separator(net, config, self.wiener, precision=self.precision)
        return separator.freeze().to(self.device)


def public_message(message: str, job: Job) -> str:
    """``message`` with server paths replaced: the upload by its client name, the rest gone."""
    message = message.replace(str(job.input), job.name or "the upload")
    return message.replace(str(job.stems), "the server's job folder").replace(
        str(job.folder), "the server's job folder"
    )


def check_space(job: Job, seconds: float, rate: int, channels: int, nb_stems: int) -> None:
    """Refuse a job whose ``nb_stems`` stems would not fit on the jobs disk."""
    need = int(seconds * rate * channels * OUTPUT_BYTES[job.fmt] * nb_stems)
    free = shutil.disk_usage(job.folder).free
    if free < need + DISK_MARGIN:
        raise UnmixError(
            f"the server's disk has {free / 1e6:.0f} MB free but the stems of this "
            f"{seconds / 60:.1f}-minute song need about {need / 1e6:.0f} MB; try a shorter "
            "file or mp3 output, or try again later"
        )


class Worker:
    """Runs the store's queued jobs on one thread; a second thread deletes expired jobs.

    Args:
        store: where jobs come from.
        separators: the loaded model.
        plan: segment geometry (Default: the CLI's).
        sweep_every: seconds between expiry sweeps while idle.
    """

    def __init__(
        self,
        store: JobStore,
        separators: Separators,
        plan: Callable[[Separator], SegmentPlan] | None = None,
        sweep_every: float = 10.0,
    ) -> None:
        self.store = store
        self.separators = separators
        self.plan = plan
        self.sweep_every = sweep_every
        self._threads = [
            threading.Thread(target=self._loop, name="unmix-worker", daemon=True),
            threading.Thread(target=self._sweep, name="unmix-expiry", daemon=True),
        ]
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the separating thread and the expiry thread."""
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the running job and end the threads."""
        self._stop.set()
        for job in self.store.jobs():
            job.cancelled.set()
        self.store.pending.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.pending.get()
            if job is not None and not job.cancelled.is_set() and not self._stop.is_set():
                self.run(job)

    def _sweep(self) -> None:
        while not self._stop.wait(self.sweep_every):
            self.store.sweep()

    def run(self, job: Job) -> None:
        """Separate ``job``; every outcome ends in :meth:`JobStore.finish`."""
        job.state = "running"
        try:
            seconds = self._separate(job)
        except Cancelled:
            self.store.finish(job, "the job was deleted")
        except UnmixError as exc:
            self.store.finish(job, public_message(str(exc), job))
        except OSError as exc:
            full = exc.errno == errno.ENOSPC
            what = "the server's disk is full" if full else "the server could not write files"
            log.warning("job %s failed: %s", job.id, exc)
            self.store.finish(job, f"{what}; nothing was kept; try again later")
        except Exception:
            log.exception("job %s failed", job.id)
            self.store.finish(job, "internal error while separating; see the server's log")
        else:
            self.store.finish(job, seconds=seconds)

    def _separate(self, job: Job) -> float:
        separator = self.separators.get(job.targets)
        meta = audio_io.info(job.input)
        total = meta.duration or 0.0
        check_space(job, total, meta.sample_rate, meta.nb_channels, len(separator.output_names))
        done = 0.0

        def progress(seconds: float) -> None:
            nonlocal done
            done += seconds
            if total > 0:
                job.progress = min(done / total, 0.99)
            if job.cancelled.is_set():
                raise Cancelled

        plan = self.plan(separator) if self.plan else None
        report = separate_file(
            separator, job.input, job.stems, job.fmt, plan=plan, progress=progress
        )
        job.outputs = dict(zip(separator.output_names, report.outputs, strict=True))
        job.input.unlink(missing_ok=True)  # the stems are what is kept
        return report.seconds
