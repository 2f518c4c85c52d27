"""The sections of the training settings (:class:`~unmix.train.config.TrainConfig`).

Every field is one ``unmix train`` flag (its name with ``-``, or the flags in its
metadata: ``n_fft`` is ``--nfft``, as in the seed's ``train.py``); each section checks
its own values, one line per problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..config import ModelConfig
from ..data.adapters import DATASETS
from ..data.augment import AUGMENTATIONS
from ..errors import UnmixError
from ..models.architectures import ARCHITECTURES, DEFAULT_ARCH
from ..tracks import SOURCES
from ..transforms import bandwidth_to_max_bin


def _opt(default: Any, help: str, *flags: str, **extra: Any) -> Any:
    meta = {"help": help, "flags": flags, **extra}
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise UnmixError(message)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


@dataclass(frozen=True)
class ModelSettings:
    """The network trained: :class:`~unmix.config.ModelConfig`'s fields, plus the
    targets (``source``) and the ``bandwidth`` its ``targets`` and ``max_bin`` come from."""

    source: tuple[str, ...] = _opt(
        ("vocals",),
        "target(s) to train; several (or 'all') train one model each on shared batches",
        "--source",
        "--target",
    )
    arch: str = _opt(
        DEFAULT_ARCH, f"network architecture: {' or '.join(ARCHITECTURES)}", choices=ARCHITECTURES
    )
    sample_rate: int = _opt(44100, "training sample rate (files at other rates are skipped)")
    n_fft: int = _opt(4096, "STFT FFT length", "--nfft")
    n_hop: int = _opt(1024, "STFT hop length", "--nhop")
    hidden_size: int = _opt(512, "hidden size of the bottleneck layers")
    nb_layers: int = _opt(3, "LSTM layers")
    nb_channels: int = _opt(2, "1: spectral mono model, 2: stereo", choices=(1, 2))
    unidirectional: bool = _opt(False, "unidirectional (causal) LSTM")
    bandwidth: int = _opt(16000, "highest frequency in Hz the LSTM sees")

    def __post_init__(self) -> None:
        _check(
            [
                (len(self.source) > 0, "--source needs at least one target"),
                (self.hidden_size > 0, "--hidden-size must be positive"),
                (self.n_fft > 0 and self.n_hop > 0, "--nfft and --nhop must be positive"),
                (self.bandwidth > 0, "--bandwidth must be positive"),
                (self.sample_rate > 0, "--sample-rate must be positive"),
            ]
        )

    @property
    def targets(self) -> tuple[str, ...]:
        """Targets in canonical order (``all`` = the four MUSDB18 sources)."""
        names = list(SOURCES) if self.source == ("all",) else list(self.source)
        ordered = [s for s in SOURCES if s in names]
        return tuple(ordered + [s for s in names if s not in ordered])

    def config(self) -> ModelConfig:
        """The :class:`ModelConfig` these settings describe (validated by it).

        Raises:
            UnmixError: a configuration the STFT or the network cannot work with.
        """
        return ModelConfig(
            targets=self.targets,
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            n_hop=self.n_hop,
            nb_channels=self.nb_channels,
            hidden_size=self.hidden_size,
            nb_layers=self.nb_layers,
            max_bin=bandwidth_to_max_bin(self.sample_rate, self.n_fft, self.bandwidth),
            unidirectional=self.unidirectional,
            arch=self.arch,
        )


@dataclass(frozen=True)
class DataSettings:
    """Where the songs come from and how excerpts are drawn."""

    root: str | None = _opt(None, "dataset root (MUSDB18 folder holding train/)")
    dataset: str = _opt("musdb", "dataset layout", choices=DATASETS)
    is_wav: bool = _opt(False, "read MUSDB18-HQ WAV folders instead of .stem.mp4 files")
    input_file: str = _opt("mixture.wav", "aligned dataset: input file name")
    output_file: str = _opt("vocals.wav", "aligned dataset: output file name")
    seq_dur: float = _opt(6.0, "excerpt length in seconds; <= 0: whole songs (batch 1)")
    samples_per_track: int = _opt(64, "random excerpts per track and epoch")
    source_augmentations: tuple[str, ...] = _opt(
        ("gain", "channelswap"), f"augmentations per source, from {list(AUGMENTATIONS)}"
    )
    nb_workers: int = _opt(0, "data-loader worker processes")
    cache_dir: str = _opt("", "decoded-audio cache folder (Default: <unmix cache>/decoded)")
    no_cache: bool = _opt(False, "decode into memory instead of the decoded-audio cache")

    def __post_init__(self) -> None:
        _check(
            [
                (_finite(self.seq_dur), "--seq-dur must be a finite number"),
                (self.samples_per_track > 0, "--samples-per-track must be positive"),
                (self.nb_workers >= 0, "--nb-workers must be >= 0"),
            ]
        )


@dataclass(frozen=True)
class OptimSettings:
    """The optimisation: epochs, batches, Adam, the plateau schedule, early stopping."""

    epochs: int = _opt(1000, "number of epochs")
    batch_size: int = _opt(16, "excerpts per batch")
    patience: int = _opt(140, "early-stopping patience in epochs")
    lr: float = _opt(0.001, "Adam learning rate")
    lr_decay_patience: int = _opt(80, "plateau LR decay patience in epochs")
    lr_decay_gamma: float = _opt(0.3, "plateau LR decay factor")
    weight_decay: float = _opt(0.00001, "Adam (L2) weight decay")
    seed: int = _opt(42, "seed of every random draw (initialisation, excerpts, dropout)")
    amp: bool = _opt(False, "mixed precision: bfloat16 autocast for the training forward pass")

    def __post_init__(self) -> None:
        _check(
            [
                (self.epochs >= 0, "--epochs must be >= 0"),
                (self.batch_size > 0, "--batch-size must be positive"),
                (self.lr > 0 and _finite(self.lr), "--lr must be a positive number"),
                (0 < self.lr_decay_gamma <= 1, "--lr-decay-gamma must be in (0, 1]"),
                (
                    self.weight_decay >= 0 and _finite(self.weight_decay),
                    "--weight-decay must be a number >= 0",
                ),
            ]
        )


@dataclass(frozen=True)
class RunSettings:
    """Where the run writes, on what it runs, and how it starts."""

    output: str = _opt("./open-unmix", "output model folder")
    resume: bool = _opt(False, "continue the run found in --output")
    force: bool = _opt(False, "start over, replacing the trained run found in --output")
    device: str = _opt("auto", "cpu, cuda, mps or auto")
    context: str = _opt(
        "", "seed spelling of the device: cpu or cudnn", choices=("", "cpu", "cudnn")
    )
    init: str = _opt(
        "",
        "start from this model's weights and input statistics (registry name or model "
        "folder, same settings) instead of random weights: fine-tuning",
    )
    threads: int = _opt(0, "torch CPU threads (0: torch default)")
    max_minutes: float = _opt(0.0, "stop at the first epoch end after this many minutes (0: off)")
    quiet: bool = _opt(False, "no progress bar")

    def __post_init__(self) -> None:
        _check(
            [
                (
                    not (self.resume and self.force),
                    "--resume continues the run in --output and --force starts it over; "
                    "give one of them",
                ),
                (
                    self.max_minutes >= 0 and _finite(self.max_minutes),
                    "--max-minutes must be a number >= 0",
                ),
            ]
        )


@dataclass(frozen=True)
class DistributedSettings:
    """Distributed (DDP) runs only."""

    local_batchnorm: bool = _opt(
        False,
        "distributed runs: batch-norm statistics of each rank's own batch (as the seed) "
        "instead of the batch of all ranks together",
    )
    dist_timeout: float = _opt(
        600.0, "distributed runs: seconds a rank waits for the others before the job fails"
    )

    def __post_init__(self) -> None:
        _check(
            [
                (
                    self.dist_timeout > 0 and _finite(self.dist_timeout),
                    "--dist-timeout must be a positive number",
                )
            ]
        )
