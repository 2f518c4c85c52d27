"""Model configurations as data.

A :class:`ModelConfig` holds everything needed to rebuild a separation model
(STFT settings, network sizes, targets). It round-trips through JSON so that a
model folder carries its own configuration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import UnmixError
from .models.architectures import ARCHITECTURES, DEFAULT_ARCH

#: canonical order of the known targets (outputs, reports, inferred folders)
TARGET_ORDER = ("vocals", "drums", "bass", "other", "speech", "noise")
FOUR_STEMS = ("vocals", "drums", "bass", "other")


def canonical_order(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` (each once) in :data:`TARGET_ORDER`, unknown names after, sorted."""
    unique = set(names)
    known = [t for t in TARGET_ORDER if t in unique]
    return (*known, *sorted(unique - set(known)))


#: Upper bounds of a model configuration, checked before anything is allocated (a model
#: file is untrusted input). They are far above every released model (umxl: hidden 1024,
#: n_fft 4096, 3 layers, 4 targets, 44.1 kHz) and far below what exhausts a machine.
LIMITS = {
    "targets": 64,
    "sample_rate": 768_000,
    "n_fft": 65_536,
    "hidden_size": 8192,
    "nb_layers": 16,
    "parameters": 1_000_000_000,  # all branches together: 4 GB of float32
}
MIN_SAMPLE_RATE = 1000
MIN_N_FFT = 16
_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a UMX-family model.

    Attributes:
        targets: output names, in output order (letters, digits, ``_``, ``-``; they name
            the weight files).
        sample_rate: audio rate the model works at (Hz).
        n_fft: FFT size (even); the network outputs ``n_fft // 2 + 1`` bins.
        n_hop: hop size in samples; divides ``n_fft`` and is at most ``n_fft / 2``, so that
            every output sample is covered by at least two Hann windows and the ISTFT's
            window envelope is bounded away from zero.
        nb_channels: 2 for stereo models, 1 for spectral-mono models.
        hidden_size: bottleneck width ``Hd``.
        nb_layers: LSTM layers.
        max_bin: bins the network sees (``None``: all).
        unidirectional: causal LSTM (``H = Hd``) instead of bidirectional (``H = Hd / 2``).
        arch: a name in :data:`unmix.models.architectures.ARCHITECTURES`.

    Every value is checked against :data:`LIMITS` and what the STFT and the networks can
    do; a bad value raises :class:`~unmix.errors.UnmixError` (one line).
    """

    targets: tuple[str, ...] = FOUR_STEMS
    sample_rate: int = 44100
    n_fft: int = 4096
    n_hop: int = 1024
    nb_channels: int = 2
    hidden_size: int = 512
    nb_layers: int = 3
    max_bin: int | None = 1487
    unidirectional: bool = False
    arch: str = DEFAULT_ARCH
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for ok, message in _checks(self):
            if not ok:
                raise UnmixError(f"invalid model config: {message} (got {self._summary()})")

    def _summary(self) -> str:
        text = str({k: v for k, v in self.to_dict().items() if k != "extra"})
        return text if len(text) <= 300 else text[:300] + "…"

    def parameter_count(self) -> int:
        """Parameters of the model this config builds (all targets), without building it."""
        h, b, c, f = self.hidden_size, self.input_bins, self.nb_channels, self.nb_bins
        lstm_h = h if self.unidirectional else h // 2
        dirs = 1 if self.unidirectional else 2
        lstm = dirs * 4 * lstm_h * (h + lstm_h + 2)  # first layer, input width h
        lstm += (self.nb_layers - 1) * dirs * 4 * lstm_h * (dirs * lstm_h + lstm_h + 2)
        dense = b * c * h + 2 * h * h + h * f * c + 4 * h + 4 * f * c + 2 * b + 2 * f
        return len(self.targets) * (lstm + dense)

    @property
    def nb_bins(self) -> int:
        """Output STFT bins ``F = n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def input_bins(self) -> int:
        """Bins the network sees ``B``."""
        return self.max_bin if self.max_bin else self.nb_bins

    def with_(self, **changes: Any) -> ModelConfig:
        """Copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary."""
        data = asdict(self)
        data["targets"] = list(self.targets)
        if not data["extra"]:
            del data["extra"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dictionary, checking names and types.

        Raises:
            UnmixError: on unknown keys or wrong types, naming them.
        """
        if not isinstance(data, dict):
            raise UnmixError(f"model config must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UnmixError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            kwargs[name] = _check_type(name, value)
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        """Write as indented JSON (atomically)."""
        from .fileio import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read a JSON file written by :meth:`save`."""
        return cls.from_dict(read_json_object(Path(path)))


#: most bytes of a model's JSON file (ours are a few hundred)
MAX_JSON_BYTES = 1 << 20


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a small file (at most :data:`MAX_JSON_BYTES`).

    Raises:
        UnmixError: unreadable, too large, not JSON (also too deeply nested), not an object.
    """
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            raise UnmixError(f"{path} is larger than {MAX_JSON_BYTES:,} bytes; not a model config")
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError) as exc:
        raise UnmixError(f"cannot read {path}: {str(exc)[:200]}; fix or delete it") from exc
    if not isinstance(data, dict):
        raise UnmixError(f"{path} must hold a JSON object")
    return data


_INT_FIELDS = {"sample_rate", "n_fft", "n_hop", "nb_channels", "hidden_size", "nb_layers"}


def _check_type(name: str, value: Any) -> Any:
    def bad(expected: str) -> UnmixError:
        return UnmixError(f"model config key {name!r} must be {expected}, got {value!r}")

    if name in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if name == "max_bin":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad("an integer or null")
        return value
    if name == "unidirectional":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if name == "arch":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if name == "targets":
        if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
            raise bad("a list of strings")
        return tuple(value)
    if name == "extra":
        if not isinstance(value, dict):
            raise bad("an object")
        return value
    return value


def _in(value: int, low: int, high: int) -> bool:
    return low <= value <= high


def _checks(c: ModelConfig) -> list[tuple[bool, str]]:
    """``(ok, what is wrong)`` for every rule; sizes first, so later rules see sane values."""
    sizes: list[tuple[bool, str]] = [
        (_in(len(c.targets), 1, LIMITS["targets"]), f"1..{LIMITS['targets']} targets"),
        (len(set(c.targets)) == len(c.targets), "targets must be unique"),
        (
            all(isinstance(t, str) and _TARGET_NAME.fullmatch(t) for t in c.targets),
            "target names must be 1-64 letters, digits, '_' or '-' (they name weight files)",
        ),
        (
            _in(c.sample_rate, MIN_SAMPLE_RATE, LIMITS["sample_rate"]),
            f"sample_rate must be in {MIN_SAMPLE_RATE}..{LIMITS['sample_rate']} Hz",
        ),
        (
            _in(c.n_fft, MIN_N_FFT, LIMITS["n_fft"]) and c.n_fft % 2 == 0,
            f"n_fft must be even and in {MIN_N_FFT}..{LIMITS['n_fft']}",
        ),
        (
            c.n_hop > 0 and c.n_fft % c.n_hop == 0 and c.n_fft // c.n_hop >= 2,
            "n_hop must divide n_fft and be at most n_fft / 2 (the inverse STFT needs "
            "overlapping windows)",
        ),
        (c.nb_channels in (1, 2), "nb_channels must be 1 or 2"),
        (
            _in(c.hidden_size, 1, LIMITS["hidden_size"]),
            f"hidden_size must be in 1..{LIMITS['hidden_size']}",
        ),
        (
            _in(c.nb_layers, 1, LIMITS["nb_layers"]),
            f"nb_layers must be in 1..{LIMITS['nb_layers']}",
        ),
        (
            c.max_bin is None or 0 < c.max_bin <= c.nb_bins,
            f"max_bin must be in 1..{c.nb_bins}",
        ),
        (c.arch in ARCHITECTURES, f"arch must be one of {tuple(ARCHITECTURES)}"),
    ]
    if not all(ok for ok, _ in sizes):
        return sizes
    return [
        (
            c.unidirectional or c.hidden_size % 2 == 0,
            "hidden_size must be even for a bidirectional LSTM",
        ),
        (
            c.parameter_count() <= LIMITS["parameters"],
            f"{c.parameter_count():,} parameters is more than {LIMITS['parameters']:,}",
        ),
    ]


#: The released configurations (see docs/models.md).
CONFIGS: dict[str, ModelConfig] = {
    "umxhq": ModelConfig(targets=FOUR_STEMS, hidden_size=512, max_bin=1487),
    "umx": ModelConfig(targets=FOUR_STEMS, hidden_size=512, max_bin=1487),
    "umxl": ModelConfig(targets=FOUR_STEMS, hidden_size=1024, max_bin=1487),
    "umxse": ModelConfig(
        targets=("speech", "noise"),
        sample_rate=16000,
        n_fft=1024,
        n_hop=512,
        nb_channels=1,
        hidden_size=256,
        max_bin=513,
    ),
}
