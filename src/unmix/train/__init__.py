"""Training: ``unmix train`` / ``python -m unmix.train`` (see ``docs/training.md``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..data import DataOptions, build
from ..data.cache import default_cache_dir
from ..errors import UnmixError
from ..loading import pick_device
from . import checkpoint
from .config import TrainConfig, merge_resumed
from .objectives import SpectrogramMSE
from .trainer import Trainer, model_config

log = logging.getLogger(__name__)

__all__ = ["SpectrogramMSE", "TrainConfig", "Trainer", "model_config", "prepare", "train"]


def data_options(settings: TrainConfig) -> DataOptions:
    """Adapter options for ``settings``."""
    cache = None if settings.no_cache else Path(settings.cache_dir or default_cache_dir())
    seq_len = settings.seq_len or 0
    return DataOptions(
        root=Path(settings.root or ""),
        targets=settings.targets,
        is_wav=settings.is_wav,
        rate=settings.sample_rate,
        nb_channels=settings.nb_channels,
        cache=cache,
        min_length=seq_len,
        input_file=settings.input_file,
        output_file=settings.output_file,
    )


def _network_names(settings: TrainConfig) -> tuple[str, ...]:
    return ("xumx",) if settings.arch == "xumx" else settings.targets


def prepare(
    settings: TrainConfig, given: set[str] | None = None
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Check ``--root``, apply ``--threads`` and, with ``--resume``, load the checkpoint.

    Returns:
        the settings to train with (a resumed run's saved ones) and the checkpoint state
        (``None`` for a new run).

    Raises:
        UnmixError: missing ``--root``, missing/unreadable checkpoint, changed settings.
    """
    if settings.root is None:
        raise UnmixError(
            "--root is required: the folder of MUSDB18 (https://zenodo.org/records/1117372) "
            "or MUSDB18-HQ (add --is-wav); nothing is downloaded automatically"
        )
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    state = None
    ckpt = checkpoint.checkpoint_path(Path(settings.output), _network_names(settings))
    if settings.resume:
        state = checkpoint.load(ckpt)
        saved = TrainConfig.from_dict(state["settings"], str(ckpt))
        settings = merge_resumed(saved, settings, given or set())
    elif ckpt.exists():
        log.warning("%s exists; starting a new run over it (use --resume to continue)", ckpt)
    return settings, state


def train(settings: TrainConfig, given: set[str] | None = None) -> Trainer:
    """Run (or ``settings.resume``) a training run; returns the finished trainer.

    Under ``torchrun`` with more than one process, the run is distributed (DDP, see
    :mod:`unmix.train.distributed`).

    Args:
        settings: resolved settings.
        given: names of settings given explicitly (checked against a resumed run's).

    Raises:
        UnmixError: bad settings, data or checkpoint (one-line message).
    """
    from . import distributed

    env = distributed.Environment.detect()
    if env.world_size > 1:
        return distributed.train(settings, given, env)
    settings, state = prepare(settings, given)
    device = pick_device(settings.device_name)
    data = build(settings.dataset, data_options(settings))
    trainer = Trainer(settings, data, device)
    if state is not None:
        trainer.restore(state)
    else:
        trainer.initialise()
    log.info(
        "training %s on %s: %d excerpts per epoch, %d validation songs",
        "+".join(trainer.names),
        device,
        len(trainer.sampler),
        len(trainer.validation),
    )
    trainer.fit()
    report_saved(trainer.output)
    return trainer


def report_saved(output: Path) -> None:
    """Say where the model is, or that no epoch ran (e.g. ``--epochs 0`` to fill the cache)."""
    if (Path(output) / "config.json").is_file():
        log.info("model saved in %s (load it with: unmix separate --model %s)", output, output)
    else:
        log.info("no epoch was trained, so no model was saved in %s", output)
