"""Output file names: ``--filename`` templates such as ``{model}/{track}/{stem}.{ext}``.

A template is a relative path with the fields ``{track}`` (the input's name, with the
sub-folders it had under a folder given as input), ``{stem}`` (``vocals``, ``no_vocals``,
...), ``{ext}`` (``wav``, ``stem.mp4``, ...) and ``{model}`` (the model's name). It is checked
before anything runs: only those fields, ``{stem}`` present exactly when every stem gets a
file of its own, and no rendered path that leaves the output folder (absolute, ``..``).
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import UnmixError

#: the fields a template may use
FIELDS = ("track", "stem", "ext", "model")
#: longest file name (bytes) most file systems take (NAME_MAX)
NAME_MAX = 255


@dataclass(frozen=True)
class FileNames:
    """A checked template for one output format.

    Attributes:
        template: the ``--filename`` text.
        ext: the format's ``{ext}``.
        model: the ``{model}`` value.
        one_file: whether the format holds every stem in one file (no ``{stem}`` then).
    """

    template: str
    ext: str
    model: str
    one_file: bool = False

    def __post_init__(self) -> None:
        fields = check_template(self.template)
        if self.one_file and "stem" in fields:
            raise UnmixError(
                f"--filename {self.template!r}: this format holds every stem in one file; "
                "leave {stem} out"
            )
        if not self.one_file and "stem" not in fields:
            raise UnmixError(
                f"--filename {self.template!r} gives every stem the same file; put {{stem}} "
                "in it (e.g. {track}/{stem}.{ext})"
            )

    def path(self, out_dir: Path, track: str, stem: str = "") -> Path:
        """``out_dir`` / the rendered template; a one-line error if it would leave
        ``out_dir`` or has a file name longer than the file system allows."""
        values = {"track": track, "stem": stem, "ext": self.ext, "model": self.model}
        rendered = self.template.format_map(values)
        relative = PurePosixPath(rendered.replace(os.sep, "/"))
        parts = relative.parts
        if not parts or relative.is_absolute() or ".." in parts or Path(rendered).is_absolute():
            raise UnmixError(
                f"the output path {rendered!r} would leave the output folder; rename the input "
                "or change --filename"
            )
        for part in parts:
            if len(os.fsencode(part)) > NAME_MAX:
                raise UnmixError(
                    f"the output name {part!r} would be {len(os.fsencode(part))} bytes, more "
                    f"than the {NAME_MAX} a file name may have; rename the input or change "
                    "--filename"
                )
        return out_dir.joinpath(*parts)

    def files(
        self, out_dir: Path, track: str, names: tuple[str, ...]
    ) -> dict[Path, tuple[str, ...]]:
        """Output file → the streams it holds (the mixture first in a one-file format)."""
        if self.one_file:
            return {self.path(out_dir, track): ("mixture", *names)}
        files: dict[Path, tuple[str, ...]] = {
            self.path(out_dir, track, name): (name,) for name in names
        }
        if len(files) != len(names):  # e.g. names that differ only in what the template drops
            raise UnmixError(f"--filename {self.template!r} gives two stems the same file")
        return files

    def key(self, out_dir: Path, track: str) -> Path:
        """Equal for two tracks exactly when their outputs would be the same files (the
        rendering is one-to-one in ``{stem}``)."""
        return self.path(out_dir, track, "\x00")

    def destination(self, out_dir: Path, track: str) -> Path:
        """The folder that holds every stem of ``track`` (``OUT/umxl/song``), or the one
        file of a one-file format; checks the template on this track."""
        if self.one_file:
            return self.path(out_dir, track)
        a, b = self.path(out_dir, track, "\x00a"), self.path(out_dir, track, "\x00b")
        return Path(*_common_prefix(a.parts, b.parts))


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def check_template(template: str) -> set[str]:
    """The fields ``template`` uses; a one-line error for anything but plain known fields."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UnmixError(f"--filename {template!r}: {exc}; write fields as {{track}}") from None
    fields = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in FIELDS or spec or conversion:
            raise UnmixError(
                f"--filename {template!r}: unknown field {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}; use {', '.join('{' + f + '}' for f in FIELDS)}"
            )
        fields.add(field)
    if template.startswith(("/", "\\")) or Path(template).is_absolute():
        raise UnmixError(f"--filename {template!r} must be relative to the output folder")
    return fields


def track_name(sub: Path, name: str) -> str:
    """``{track}``: ``name`` under the sub-folder it was found in (``live/song``)."""
    return (sub / name).as_posix() if sub.parts else name
