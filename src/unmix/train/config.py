"""All training settings: one frozen dataclass made of sections, which also define the flags.

The sections (:mod:`unmix.train.sections`) are :class:`ModelSettings` (what
:class:`~unmix.config.ModelConfig` is built from, with its field names: ``n_fft`` is the
``--nfft`` flag), :class:`DataSettings`, :class:`OptimSettings`, :class:`RunSettings` and
:class:`DistributedSettings`. Every field is one ``unmix train`` flag (names and defaults
follow the seed's ``train.py``); field names are unique across the sections, so a setting has one name everywhere (flags,
config files, ``training.json``, error messages). Settings resolve in this order:
defaults, then a config file, then the flags given (:mod:`unmix.train.flags`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..data.adapters import DataOptions
from ..data.cache import default_cache_dir
from ..errors import UnmixError
from .sections import (
    DataSettings,
    DistributedSettings,
    ModelSettings,
    OptimSettings,
    RunSettings,
)

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
        "resume",
        "force",
    }
)


#: the sections of :class:`TrainConfig`, by attribute name
SECTIONS: Mapping[str, type] = {
    "model": ModelSettings,
    "data": DataSettings,
    "optim": OptimSettings,
    "run": RunSettings,
    "distributed": DistributedSettings,
}


def setting_fields() -> Iterator[tuple[str, Field[Any]]]:
    """``(section, field)`` of every setting, section by section."""
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            yield section, f


def flag_names(f: Field[Any]) -> tuple[str, ...]:
    """The flags of a setting (``--nfft`` for ``n_fft``; ``--source``, ``--target``)."""
    return f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",)


def field_default(f: Field[Any]) -> Any:
    """A setting's default value."""
    if f.default is MISSING and callable(f.default_factory):
        return f.default_factory()
    return f.default


def _aliases() -> dict[str, tuple[str, Field[Any]]]:
    """``{spelling: (section, field)}``: field names and flags (``-`` read as ``_``)."""
    out: dict[str, tuple[str, Field[Any]]] = {}
    for section, f in setting_fields():
        out[f.name] = (section, f)
        for flag in flag_names(f):
            out[flag.lstrip("-").replace("-", "_")] = (section, f)
    return out


_ALIASES = _aliases()


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` on one line, at most ``limit`` characters."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (see ``docs/training.md``), by section."""

    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    run: RunSettings = field(default_factory=RunSettings)
    distributed: DistributedSettings = field(default_factory=DistributedSettings)

    def __post_init__(self) -> None:
        seq_dur = self.data.seq_dur
        excerpts = seq_dur > 0 and self.data.dataset != "aligned"
        if excerpts and seq_dur * self.model.sample_rate < self.model.n_fft:
            raise UnmixError(f"--seq-dur {seq_dur} is shorter than one FFT window")
        # the model config is validated now, before any data is read or file written
        self.model_config  # noqa: B018

    @cached_property
    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` the run trains."""
        return self.model.config()

    @property
    def targets(self) -> tuple[str, ...]:
        """Targets in canonical order (``all`` = the four MUSDB18 sources)."""
        return self.model.targets

    @property
    def seq_len(self) -> int | None:
        """Excerpt length in samples, ``None`` for whole songs."""
        seq_dur = self.data.seq_dur
        return int(round(seq_dur * self.model.sample_rate)) if seq_dur > 0 else None

    @property
    def device_name(self) -> str:
        """Device after mapping the seed's ``--context``."""
        if self.run.context:
            return "cpu" if self.run.context == "cpu" else "cuda"
        return self.run.device

    def get(self, name: str) -> Any:
        """The setting called ``name`` (a field name of any section)."""
        section, f = _ALIASES[name]
        return getattr(getattr(self, section), f.name)

    def flat(self) -> dict[str, Any]:
        """``{field name: value}`` of every setting."""
        return {f.name: getattr(getattr(self, s), f.name) for s, f in setting_fields()}

    def with_(self, **changes: Any) -> TrainConfig:
        """Copy with settings (by field name) changed."""
        by_section: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            section, f = _ALIASES[name]
            by_section.setdefault(section, {})[f.name] = value
        parts = {s: replace(getattr(self, s), **c) for s, c in by_section.items()}
        return replace(self, **parts)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-able settings, by section (``training.json``, checkpoints)."""
        out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for section, f in setting_fields():
            value = getattr(getattr(self, section), f.name)
            out[section][f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[Any, Any], origin: str = "settings") -> TrainConfig:
        """Build from a mapping: sections (as :meth:`to_dict` writes) or flat keys spelt
        as fields or flags (``hidden_size``, ``hidden-size``, ``nfft``, ``n_fft``).

        Raises:
            UnmixError: unknown keys or values of the wrong type (one line).
        """
        return cls().with_(**setting_values(data, origin))


def setting_values(data: Mapping[Any, Any], origin: str = "settings") -> dict[str, Any]:
    """``{field name: value}`` from a mapping as :meth:`TrainConfig.from_dict` takes it,
    each value type-checked (not yet validated together).

    Raises:
        UnmixError: unknown keys or values of the wrong type (one line).
    """
    values: dict[str, Any] = {}
    for raw, value in data.items():
        if raw in SECTIONS and isinstance(value, Mapping):
            for inner, item in value.items():
                _put(values, inner, item, origin, section=str(raw))
        else:
            _put(values, raw, value, origin)
    return values


def _put(
    values: dict[str, Any], raw: Any, value: Any, origin: str, section: str | None = None
) -> None:
    name = str(raw).lstrip("-").replace("-", "_")
    found = _ALIASES.get(name)
    if found is None or (section is not None and found[0] != section):
        known = [f.name for s, f in setting_fields() if section in (None, s)]
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        where = _short(raw) if section is None else f"{section}.{_short(raw)}"
        raise UnmixError(
            f"{origin}: unknown setting {where}; {hint}(the settings are the flags of "
            "'unmix train --help')"
        )
    values[found[1].name] = _coerce(found[1], value, origin)


def _coerce(f: Field[Any], value: Any, origin: str) -> Any:
    default = field_default(f)
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
        try:
            value = float(value) if ok else value
        except OverflowError:  # an integer beyond the float range
            ok = False
    elif isinstance(default, str) or default is None:
        ok = value is None or isinstance(value, str)
    if not ok:
        raise UnmixError(f"{origin}: setting {f.name!r} has the wrong type ({_short(value)})")
    return value


def data_options(settings: TrainConfig) -> DataOptions:
    """Adapter options for ``settings``."""
    data = settings.data
    cache = None if data.no_cache else Path(data.cache_dir or default_cache_dir())
    return DataOptions(
        root=Path(data.root or ""),
        targets=settings.targets,
        is_wav=data.is_wav,
        rate=settings.model.sample_rate,
        nb_channels=settings.model.nb_channels,
        cache=cache,
        min_length=settings.seq_len or 0,
        input_file=data.input_file,
        output_file=data.output_file,
    )


def merge_resumed(saved: TrainConfig, current: TrainConfig, given: set[str]) -> TrainConfig:
    """Settings of a resumed run: the saved ones, with runtime fields from ``current``.

    Raises:
        UnmixError: an explicitly given setting that would change the result.
    """
    clash = sorted(n for n in given - RUNTIME_FIELDS if saved.get(n) != current.get(n))
    if clash:
        raise UnmixError(
            f"--resume continues the saved run, but {clash} differ from its settings; drop "
            "them or train into a new --output"
        )
    runtime = {n: current.get(n) for n in RUNTIME_FIELDS if n not in ("resume", "force")}
    return saved.with_(resume=True, force=False, **runtime)
