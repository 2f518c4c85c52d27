"""All training settings in one dataclass, which also generates the ``unmix train`` flags.

Names and defaults follow the seed's ``train.py`` (``--root``, ``--source``, ``--epochs
1000``, ...). Settings resolve in this order: dataclass defaults, then a config file
(``--config run.toml``/``.yaml``/``.json``, keys spelt as fields or flags), then the
flags given on the command line. The resolved settings are saved beside the model.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..data.adapters import DATASETS
from ..data.augment import AUGMENTATIONS
from ..errors import UnmixError
from ..tracks import SOURCES

#: settings that may change when a run is resumed (they do not change the result)
RUNTIME_FIELDS = frozenset(
    {
        "epochs",
        "nb_workers",
        "device",
        "context",
        "quiet",
        "threads",
        "cache_dir",
        "no_cache",
        "max_minutes",
        "dist_timeout",
    }
)


def _opt(default: Any, help: str, *flags: str, **extra: Any) -> Any:
    meta = {"help": help, "flags": flags, **extra}
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (see ``docs/training.md``)."""

    root: str | None = _opt(None, "dataset root (MUSDB18 folder holding train/)")
    source: tuple[str, ...] = _opt(
        ("vocals",),
        "target(s) to train; several (or 'all') train one model each on shared batches",
        "--source",
        "--target",
    )
    output: str = _opt("./open-unmix", "output model folder")
    epochs: int = _opt(1000, "number of epochs")
    batch_size: int = _opt(16, "excerpts per batch")
    patience: int = _opt(140, "early-stopping patience in epochs")
    seq_dur: float = _opt(6.0, "excerpt length in seconds; <= 0: whole songs (batch 1)")
    unidirectional: bool = _opt(False, "unidirectional (causal) LSTM")
    hidden_size: int = _opt(512, "hidden size of the bottleneck layers")
    nfft: int = _opt(4096, "STFT FFT length")
    nhop: int = _opt(1024, "STFT hop length")
    nb_layers: int = _opt(3, "LSTM layers")
    lr: float = _opt(0.001, "Adam learning rate")
    lr_decay_patience: int = _opt(80, "plateau LR decay patience in epochs")
    lr_decay_gamma: float = _opt(0.3, "plateau LR decay factor")
    weight_decay: float = _opt(0.00001, "Adam (L2) weight decay")
    bandwidth: int = _opt(16000, "highest frequency in Hz the LSTM sees")
    nb_channels: int = _opt(2, "1: spectral mono model, 2: stereo", choices=(1, 2))
    nb_workers: int = _opt(0, "data-loader worker processes")
    seed: int = _opt(42, "seed of every random draw (initialisation, excerpts, dropout)")
    is_wav: bool = _opt(False, "read MUSDB18-HQ WAV folders instead of .stem.mp4 files")
    samples_per_track: int = _opt(64, "random excerpts per track and epoch")
    source_augmentations: tuple[str, ...] = _opt(
        ("gain", "channelswap"), f"augmentations per source, from {list(AUGMENTATIONS)}"
    )
    sample_rate: int = _opt(44100, "training sample rate (files at other rates are skipped)")
    dataset: str = _opt("musdb", "dataset layout", choices=DATASETS)
    input_file: str = _opt("mixture.wav", "aligned dataset: input file name")
    output_file: str = _opt("vocals.wav", "aligned dataset: output file name")
    arch: str = _opt("umx", "umx (one model per target) or xumx (joint)", choices=("umx", "xumx"))
    device: str = _opt("auto", "cpu, cuda, mps or auto")
    context: str = _opt(
        "", "seed spelling of the device: cpu or cudnn", choices=("", "cpu", "cudnn")
    )
    amp: bool = _opt(False, "mixed precision: bfloat16 autocast for the training forward pass")
    resume: bool = _opt(False, "continue the run found in --output")
    cache_dir: str = _opt("", "decoded-audio cache folder (Default: <unmix cache>/decoded)")
    no_cache: bool = _opt(False, "decode into memory instead of the decoded-audio cache")
    threads: int = _opt(0, "torch CPU threads (0: torch default)")
    max_minutes: float = _opt(0.0, "stop at the first epoch end after this many minutes (0: off)")
    quiet: bool = _opt(False, "no progress bar")
    local_batchnorm: bool = _opt(
        False,
        "distributed runs: batch-norm statistics of each rank's own batch (as the seed) "
        "instead of the batch of all ranks together",
    )
    dist_timeout: float = _opt(
        600.0, "distributed runs: seconds a rank waits for the others before the job fails"
    )

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 0, "--epochs must be >= 0"),
            (self.batch_size > 0, "--batch-size must be positive"),
            (self.samples_per_track > 0, "--samples-per-track must be positive"),
            (self.hidden_size > 0, "--hidden-size must be positive"),
            (self.nfft > 0 and self.nhop > 0, "--nfft and --nhop must be positive"),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (0 < self.lr_decay_gamma <= 1, "--lr-decay-gamma must be in (0, 1]"),
            (self.nb_workers >= 0, "--nb-workers must be >= 0"),
            (self.bandwidth > 0, "--bandwidth must be positive"),
            (len(self.source) > 0, "--source needs at least one target"),
            (self.dist_timeout > 0, "--dist-timeout must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise UnmixError(message)
        if (
            self.seq_dur > 0
            and self.dataset != "aligned"
            and self.seq_dur * self.sample_rate < self.nfft
        ):
            raise UnmixError(f"--seq-dur {self.seq_dur} is shorter than one FFT window")

    @property
    def targets(self) -> tuple[str, ...]:
        """Targets in canonical order (``all`` = the four MUSDB18 sources)."""
        names = list(SOURCES) if self.source == ("all",) else list(self.source)
        ordered = [s for s in SOURCES if s in names]
        return tuple(ordered + [s for s in names if s not in ordered])

    @property
    def seq_len(self) -> int | None:
        """Excerpt length in samples, ``None`` for whole songs."""
        return int(round(self.seq_dur * self.sample_rate)) if self.seq_dur > 0 else None

    @property
    def device_name(self) -> str:
        """Device after mapping the seed's ``--context``."""
        if self.context:
            return "cpu" if self.context == "cpu" else "cuda"
        return self.device

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "settings") -> TrainConfig:
        """Build from a mapping (keys as fields, or flags with ``-``).

        Raises:
            UnmixError: unknown keys or values of the wrong type.
        """
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for raw, value in data.items():
            name = str(raw).lstrip("-").replace("-", "_")
            name = "source" if name == "target" else name
            if name not in known:
                raise UnmixError(f"{origin}: unknown setting {raw!r}; known: {sorted(known)}")
            kwargs[name] = _coerce(name, known[name].default, value, origin)
        return cls(**kwargs)


def _field_default(f: Any) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def _coerce(name: str, default: Any, value: Any, origin: str) -> Any:
    if default is MISSING:  # tuple fields
        default = _field_default(next(f for f in fields(TrainConfig) if f.name == name))
    ok = True
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, tuple):
        value = (value,) if isinstance(value, str) else value
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str) or default is None:
        ok = value is None or isinstance(value, str)
    if not ok:
        raise UnmixError(f"{origin}: setting {name!r} has the wrong type ({value!r})")
    return value


def read_file(path: Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON settings file into a mapping."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UnmixError(f"cannot read config file {path}: {exc}") from exc
    try:
        if path.suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise UnmixError(f"config file {path}: use a .toml, .yaml or .json file")
    except ImportError as exc:
        raise UnmixError(f"cannot read {path}: {exc.name} is not installed") from exc
    except ValueError as exc:
        raise UnmixError(f"config file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict):
        raise UnmixError(f"config file {path} must hold a mapping of settings")
    return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :class:`TrainConfig` field (defaults are applied in :func:`resolve`)."""
    parser.add_argument("--config", type=Path, default=None, help="TOML/YAML/JSON settings file")
    for f in fields(TrainConfig):
        default = _field_default(f)
        flags = f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",)
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f"{f.metadata['help']} (default: {default!r})",
        }
        if isinstance(default, bool):
            kwargs["action"] = "store_true"
        elif isinstance(default, tuple):
            kwargs["nargs"] = "+"
        else:
            kwargs["type"] = type(default) if default is not None else str
            kwargs["metavar"] = f.name.upper()
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(*flags, **kwargs)


def resolve(args: argparse.Namespace) -> tuple[TrainConfig, set[str]]:
    """Defaults, then ``--config``, then explicit flags.

    Returns:
        the settings and the names given explicitly on the command line.
    """
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    settings: dict[str, Any] = {}
    config_file = getattr(args, "config", None)
    if config_file is not None:
        settings.update(TrainConfig.from_dict(read_file(config_file), str(config_file)).to_dict())
    settings.update(given)
    return TrainConfig.from_dict(settings), set(given)


def merge_resumed(saved: TrainConfig, current: TrainConfig, given: set[str]) -> TrainConfig:
    """Settings of a resumed run: the saved ones, with runtime fields from ``current``.

    Raises:
        UnmixError: an explicitly given setting that would change the result.
    """
    clash = sorted(
        n for n in given - RUNTIME_FIELDS - {"resume"} if getattr(saved, n) != getattr(current, n)
    )
    if clash:
        raise UnmixError(
            f"--resume continues the saved run, but {clash} differ from its settings; drop "
            "them or train into a new --output"
        )
    runtime = {n: getattr(current, n) for n in RUNTIME_FIELDS}
    return replace(saved, resume=True, **runtime)
