"""The run sequence of ``unmix train``, one for single-process and distributed runs.

:func:`train` checks the settings and the output folder, loads a checkpoint to resume,
reads the data, builds the trainer, initialises or restores it, trains and reports. What
differs between one process and one rank of a DDP job (device choice, joining the process
group, wrapping the units, failures) is the *place* it runs in: :class:`LocalRun` here,
:class:`~unmix.train.ddp.DistributedRun` for a rank.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import torch

from ..data import TrainData, build
from ..device import pick_device
from ..errors import UnmixError
from . import checkpoint, report
from .config import TrainConfig, data_options, merge_resumed
from .ddp import DistributedRun
from .launcher import Environment, resume_after_restart
from .trainer import Trainer
from .units import network_names
from .warmstart import check_initial

log = logging.getLogger(__name__)

#: suffix of the weight files a run writes into its output folder
WEIGHTS_SUFFIX = ".safetensors"


class Place(Protocol):
    """Where the run sequence runs: one process, or one rank of a distributed job."""

    def session(self, settings: TrainConfig) -> AbstractContextManager[None]:
        """Around the whole run: logging, and how failures are reported."""

    def device(self, settings: TrainConfig) -> torch.device:
        """The device to train on."""

    def load_data(self, settings: TrainConfig, device: torch.device) -> TrainData:
        """The songs (a rank joins its job first)."""

    def trainer(self, settings: TrainConfig, data: TrainData, device: torch.device) -> Trainer:
        """The trainer."""

    def start(self, trainer: Trainer) -> None:
        """After the weights are initialised or restored, before the first epoch."""

    def describe(self, trainer: Trainer) -> str:
        """Where and how it trains, for the start message."""

    def finish(self, trainer: Trainer) -> None:
        """After the last epoch."""


class LocalRun:
    """The place of a single-process run."""

    @contextlib.contextmanager
    def session(self, settings: TrainConfig) -> Iterator[None]:
        """Nothing to set up; errors pass unchanged."""
        yield

    def device(self, settings: TrainConfig) -> torch.device:
        """``--device`` (``auto``: CUDA, then MPS, then the CPU)."""
        return pick_device(settings.device_name)

    def load_data(self, settings: TrainConfig, device: torch.device) -> TrainData:
        """The songs of ``--root``."""
        return build(settings.data.dataset, data_options(settings))

    def trainer(self, settings: TrainConfig, data: TrainData, device: torch.device) -> Trainer:
        """A :class:`Trainer`."""
        return Trainer(settings, data, device)

    def start(self, trainer: Trainer) -> None:
        """Nothing to do."""

    def describe(self, trainer: Trainer) -> str:
        """Device, excerpts and validation songs."""
        return (
            f"{trainer.device}: {len(trainer.sampler)} excerpts per epoch, "
            f"{len(trainer.validation)} validation songs"
        )

    def finish(self, trainer: Trainer) -> None:
        """Nothing to do."""


def trained_files(settings: TrainConfig) -> list[Path]:
    """Files in ``--output`` that hold a run of the same units: their checkpoint and
    weight files (a run of other targets into the same folder is merged, not replaced)."""
    output = Path(settings.run.output)
    names = network_names(settings.model_config)
    candidates = [checkpoint.checkpoint_path(output, names)]
    candidates += [output / f"{name}{WEIGHTS_SUFFIX}" for name in names]
    return [p for p in candidates if p.exists()]


def prepare(
    settings: TrainConfig, given: set[str] | None = None
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Check ``--root`` and the output folder, apply ``--threads`` and, with ``--resume``,
    load the checkpoint. Reads no data and writes nothing.

    Returns:
        the settings to train with (a resumed run's saved ones) and the checkpoint state
        (``None`` for a new run).

    Raises:
        UnmixError: missing ``--root``, a trained run in ``--output`` without ``--resume``
            or ``--force``, a folder holding a model with other settings, a missing or
            unreadable checkpoint, changed settings.
    """
    if settings.data.root is None:
        raise UnmixError(
            "--root is required here: the folder of MUSDB18 (https://zenodo.org/records/1117372) "
            "or MUSDB18-HQ (add --is-wav); only 'unmix train' with the musdb layout and no "
            "--is-wav fetches the MUSDB18 previews by itself"
        )
    if settings.run.threads > 0:
        torch.set_num_threads(settings.run.threads)
    if not settings.run.resume:
        found = trained_files(settings)
        if found and not settings.run.force:
            listed = ", ".join(str(p.relative_to(settings.run.output)) for p in found)
            raise UnmixError(
                f"{settings.run.output} already holds a trained run ({listed}); continue it "
                "with --resume, or start over with --force (which replaces it)"
            )
        if found:
            log.warning("--force: starting over; the run in %s will be replaced", found[0])
        report.merged_config(Path(settings.run.output), settings.model_config)  # compatible?
        if settings.run.init:
            check_initial(settings.run.init, settings.model_config)
        return settings, None
    ckpt = checkpoint.checkpoint_path(
        Path(settings.run.output), network_names(settings.model_config)
    )
    state = checkpoint.load(ckpt)
    saved = TrainConfig.from_dict(state["settings"], str(ckpt))
    return merge_resumed(saved, settings, given or set()), state


def train(settings: TrainConfig, given: set[str] | None = None) -> Trainer:
    """Run (or ``--resume``) a training run; returns the finished trainer.

    Under ``torchrun`` with more than one process, this is one rank of a distributed run
    (DDP, see :mod:`unmix.train.ddp`).

    Args:
        settings: resolved settings.
        given: names of settings given explicitly (checked against a resumed run's).

    Raises:
        UnmixError: bad settings, data or checkpoint, a failed write (one line).
    """
    env = Environment.detect()
    place: Place = DistributedRun(env) if env.world_size > 1 else LocalRun()
    with place.session(settings):
        trainer = run(settings, given, place)
    return trainer


def run(settings: TrainConfig, given: set[str] | None, place: Place) -> Trainer:
    """The run sequence in ``place`` (see the module docstring)."""
    settings, state = prepare(resume_after_restart(settings), given)
    device = place.device(settings)
    data = place.load_data(settings, device)
    trainer = place.trainer(settings, data, device)
    if state is not None:
        trainer.restore(state)
    else:
        trainer.initialise()
    place.start(trainer)
    log.info("training %s on %s", "+".join(trainer.names), place.describe(trainer))
    trainer.fit()
    place.finish(trainer)
    if trainer.writes:
        report_saved(trainer.output)
    return trainer


def report_saved(output: Path) -> None:
    """Say where the model is, or that no epoch ran (e.g. ``--epochs 0`` to fill the cache)."""
    if (Path(output) / "config.json").is_file():
        log.info("model saved in %s (load it with: unmix separate --model %s)", output, output)
    else:
        log.info("no epoch was trained, so no model was saved in %s", output)
