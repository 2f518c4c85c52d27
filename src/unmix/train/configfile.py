"""Reading a settings file (``unmix train --config FILE``): TOML, YAML or JSON, bounded.

A settings file is a few lines, and it may come from anywhere, so it is read within
limits before it is parsed: at most :data:`MAX_BYTES`, UTF-8, nested at most
:data:`MAX_DEPTH` levels, and YAML without anchors or aliases (an alias "bomb" of a few
hundred bytes expands into gigabytes). Every problem is one line of at most about
:data:`MESSAGE_LIMIT` characters that never repeats the document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as the tomli package (a dependency there)
    import tomli as tomllib

from ..errors import UnmixError

#: largest settings file read (a complete one is under 2 KB)
MAX_BYTES = 64 * 1024
#: deepest nesting of mappings and lists (settings use 3: file, section, list)
MAX_DEPTH = 8
#: longest parser message quoted in an error
MESSAGE_LIMIT = 160


class _Refused(Exception):
    """A document outside the limits (turned into :class:`UnmixError` with the path)."""


def _gist(exc: BaseException) -> str:
    """A parser's message on one line, at most :data:`MESSAGE_LIMIT` characters."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if isinstance(problem, str) and mark is not None:  # YAML: no quoted snippet
        text = f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    else:
        text = str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _depth(data: Any) -> int:
    """Nesting depth of mappings and lists (a scalar: 0), without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def _load_yaml(text: str) -> Any:
    """YAML, after a pass over its events that refuses anchors, aliases and deep nesting."""
    try:
        import yaml  # optional dependency: unmix[yaml] (PyYAML)
    except ModuleNotFoundError:
        raise UnmixError(
            "YAML settings files need PyYAML: pip install 'unmix[yaml]' (or write the "
            "settings as TOML or JSON)"
        ) from None

    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused("YAML anchors and aliases (&, *) are not allowed in settings")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(_gist(exc)) from exc


_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    ".toml": ("TOML", tomllib.loads),
    ".yaml": ("YAML", _load_yaml),
    ".yml": ("YAML", _load_yaml),
    ".json": ("JSON", json.loads),
}


def _read_text(path: Path) -> str:
    """The file's text: a regular file of at most :data:`MAX_BYTES`, UTF-8."""
    try:
        if not path.is_file():  # also keeps a FIFO from blocking the open
            raise UnmixError(f"config file {path} is not a readable file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UnmixError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise UnmixError(
            f"config file {path} is larger than {MAX_BYTES // 1024} KiB; a settings file "
            "is a few lines (see docs/training.md)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnmixError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from exc


def read_file(path: Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON settings file into a mapping.

    Raises:
        UnmixError: an unreadable, too large, malformed or too deeply nested file, YAML
            anchors or aliases, or a document that is not a mapping (one line).
    """
    path = Path(path)
    if path.suffix not in _PARSERS:
        raise UnmixError(f"config file {path}: use a .toml, .yaml or .json file")
    kind, parse = _PARSERS[path.suffix]
    text = _read_text(path)
    try:
        data = parse(text)
    except ImportError as exc:
        raise UnmixError(f"cannot read {path}: {exc.name} is not installed") from exc
    except _Refused as exc:
        raise UnmixError(f"config file {path}: {exc}") from None
    except RecursionError:
        raise UnmixError(f"config file {path}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise UnmixError(f"config file {path} is not valid {kind}: {_gist(exc)}") from None
    if _depth(data) > MAX_DEPTH:
        raise UnmixError(f"config file {path}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise UnmixError(f"config file {path} must hold a mapping of settings")
    return data
