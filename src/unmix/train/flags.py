"""The ``unmix train`` flags: generated from :class:`~unmix.train.config.TrainConfig`,
resolved (defaults, then ``--config FILE``, then the flags given), and written back as
argv for the ranks that ``--nproc`` starts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .config import (
    SECTIONS,
    TrainConfig,
    field_default,
    flag_names,
    setting_fields,
    setting_values,
)
from .configfile import read_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting, grouped by section (defaults are applied in :func:`resolve`)."""
    parser.add_argument("--config", type=Path, default=None, help="TOML/YAML/JSON settings file")
    groups = {s: parser.add_argument_group(f"{s} settings") for s in SECTIONS}
    for section, f in setting_fields():
        default = field_default(f)
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
        groups[section].add_argument(*flag_names(f), **kwargs)


def resolve(args: argparse.Namespace) -> tuple[TrainConfig, set[str]]:
    """Defaults, then ``--config``, then explicit flags.

    Returns:
        the settings and the names given explicitly on the command line.

    Raises:
        UnmixError: a bad settings file or value (one line).
    """
    names = {f.name for _, f in setting_fields()}
    given = {k: v for k, v in vars(args).items() if k in names}
    values: dict[str, Any] = {}
    config_file = getattr(args, "config", None)
    if config_file is not None:
        values = setting_values(read_file(config_file), str(config_file))
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
    return TrainConfig().with_(**values), set(given)


def flags_from_args(args: argparse.Namespace) -> list[str]:
    """The ``unmix train`` flags given in ``args`` (``--config`` and settings), as argv."""
    given = vars(args)
    out: list[str] = []
    if given.get("config") is not None:
        out += ["--config", str(given["config"])]
    for _, f in setting_fields():
        if f.name not in given:
            continue
        flag = flag_names(f)[0]
        value = given[f.name]
        if isinstance(value, bool):
            out += [flag] if value else []
        elif isinstance(value, list | tuple):
            out += [flag, *map(str, value)]
        else:
            out.append(f"{flag}={value}")
    return out
