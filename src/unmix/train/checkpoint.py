"""Checkpoints as plain data, written atomically.

A checkpoint is one ``torch.save`` file of nested dicts, lists, numbers, strings and
tensors (model, optimiser and scheduler states, early-stopping state, history, RNG
state, settings), so it loads with ``torch.load(weights_only=True)``. It is written to
a temporary file and renamed: an interrupted write (even SIGKILL) leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import errno
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import UnmixError
from ..fileio import atomic_path

CHECKPOINT_DIR = "checkpoint"


def checkpoint_path(output: Path, names: tuple[str, ...]) -> Path:
    """``<output>/checkpoint/<name>[+<name>...].pt`` for the networks ``names``."""
    return Path(output) / CHECKPOINT_DIR / f"{'+'.join(names)}.pt"


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (fsync, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())


def mount_point(path: Path) -> Path:
    """The mount point of the file system that holds ``path`` (the disk it is on)."""
    here = Path(os.path.abspath(path))
    while not here.exists() and here != here.parent:
        here = here.parent
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    return here


def write_error(exc: OSError, output: Path) -> UnmixError:
    """One line for a failed write into ``output`` (a full disk, a quota, permissions)."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = f"{reason}: the disk mounted at {mount_point(output)} is full"
    return UnmixError(
        f"cannot write the training state into {output} ({reason}); the last complete "
        "checkpoint is intact: fix this and continue with --resume"
    )


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint without executing code.

    Raises:
        UnmixError: missing, corrupt or unsafe files.
    """
    if not path.is_file():
        raise UnmixError(
            f"--resume: no checkpoint at {path}; check --output, or start a run without "
            "--resume (with --force where the folder holds trained weights)"
        )
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise UnmixError(f"cannot read checkpoint {path}: {str(exc)[:200]}") from exc
    if not isinstance(data, dict) or "epoch" not in data:
        raise UnmixError(f"{path} is not an unmix training checkpoint")
    return data
