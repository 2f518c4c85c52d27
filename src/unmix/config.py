"""Model configurations as data.

A :class:`ModelConfig` holds everything needed to rebuild a separation model
(STFT settings, network sizes, targets). It round-trips through JSON so that a
model folder carries its own configuration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import UnmixError

ARCHS = ("umx", "xumx")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a UMX-family model.

    Attributes:
        targets: output names, in output order.
        sample_rate: audio rate the model works at (Hz).
        n_fft: FFT size; the network outputs ``n_fft // 2 + 1`` bins.
        n_hop: hop size in samples.
        nb_channels: 2 for stereo models, 1 for spectral-mono models.
        hidden_size: bottleneck width ``Hd``.
        nb_layers: LSTM layers.
        max_bin: bins the network sees (``None``: all).
        unidirectional: causal LSTM (``H = Hd``) instead of bidirectional (``H = Hd / 2``).
        arch: ``"umx"`` (one network per target) or ``"xumx"`` (one bridged network).
    """

    targets: tuple[str, ...] = ("vocals", "drums", "bass", "other")
    sample_rate: int = 44100
    n_fft: int = 4096
    n_hop: int = 1024
    nb_channels: int = 2
    hidden_size: int = 512
    nb_layers: int = 3
    max_bin: int | None = 1487
    unidirectional: bool = False
    arch: str = "umx"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (len(self.targets) > 0, "targets must not be empty"),
            (len(set(self.targets)) == len(self.targets), "targets must be unique"),
            (self.sample_rate > 0, "sample_rate must be positive"),
            (self.n_fft > 0 and self.n_hop > 0, "n_fft and n_hop must be positive"),
            (self.nb_channels in (1, 2), "nb_channels must be 1 or 2"),
            (self.hidden_size > 0, "hidden_size must be positive"),
            (
                self.unidirectional or self.hidden_size % 2 == 0,
                "hidden_size must be even for a bidirectional LSTM",
            ),
            (self.nb_layers > 0, "nb_layers must be positive"),
            (
                self.max_bin is None or 0 < self.max_bin <= self.nb_bins,
                f"max_bin must be in 1..{self.nb_bins}",
            ),
            (self.arch in ARCHS, f"arch must be one of {ARCHS}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UnmixError(f"invalid model config: {message} (got {self.to_dict()})")

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
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UnmixError(f"cannot read model config {path}: {exc}") from exc
        return cls.from_dict(data)


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


FOUR_STEMS = ("vocals", "drums", "bass", "other")

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
