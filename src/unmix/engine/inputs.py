"""Inputs of a batch: files, folders walked for audio files, ``-`` (stdin)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import audio as audio_io
from ..audio.spool import is_stdin


def input_name(path: Path) -> str:
    """``song`` for ``song.mp3`` and ``song.stem.mp4``; ``stdin`` for ``-``."""
    if is_stdin(path):
        return "stdin"
    if path.name.lower().endswith(".stem.mp4"):
        return path.name[: -len(".stem.mp4")]
    return path.stem


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def _walk(folder: Path, out_dir: Path) -> tuple[list[Path], str | None]:
    """Audio files under ``folder`` (hidden ones and those inside ``out_dir`` left out)."""
    if _is_inside(folder, out_dir):
        return [], (
            f"{folder}: the folder is inside --out-dir {out_dir}, and files there are never "
            "taken as inputs (they are outputs); choose another --out-dir"
        )
    files = sorted(
        f
        for f in folder.rglob("*")
        if f.is_file()
        and audio_io.is_audio_name(f)
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
        and not _is_inside(f, out_dir)
    )
    return files, None if files else f"{folder}: no audio files found in this folder"


def find_inputs(inputs: Sequence[Path], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files to separate as ``(file, sub-folder under OUT)``, and one error per bad input.

    Folders are walked recursively for audio file names; files given by name (and ``-``,
    pipes, FIFOs) are taken whatever their ending.
    """
    found: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for item in map(Path, inputs):
        if is_stdin(item):
            found.append((item, Path()))
        elif item.is_dir():
            files, error = _walk(item, out_dir)
            errors.extend([error] if error else [])
            found.extend((f, f.parent.relative_to(item)) for f in files)
        elif item.exists():
            found.append((item, Path()))
        else:
            errors.append(f"{item}: no such file or folder")
    return found, errors
