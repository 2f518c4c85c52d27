"""Starting distributed runs: the torchrun environment of a rank, ``unmix train --nproc N``
(torchrun on this machine), restarts, and what a failed job's exit status means.

A rank learns its place from the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ...);
:func:`launch` starts torchrun and judges the job by its exit status (a signal, an
interrupt, or a failed rank, whose own message torchrun has already listed), never by
the text it printed.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnmixError
from . import checkpoint
from .config import TrainConfig
from .units import network_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Environment:
    """This process's place in a torchrun job (from ``RANK``, ``WORLD_SIZE``, ...).

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        local_world_size: processes on this machine.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """Read the variables torchrun sets (a plain process: rank 0 of 1).

        Raises:
            UnmixError: values that are not integers or out of range.
        """
        env = os.environ if environ is None else environ
        world = _number(env, "WORLD_SIZE", 1)
        rank = _number(env, "RANK", 0)
        local_rank = _number(env, "LOCAL_RANK", rank)
        found = cls(rank, world, local_rank, _number(env, "LOCAL_WORLD_SIZE", world))
        if world < 1 or not 0 <= rank < world or not 0 <= local_rank < world:
            raise UnmixError(
                f"inconsistent torchrun environment: RANK={rank}, LOCAL_RANK={local_rank}, "
                f"WORLD_SIZE={world}"
            )
        return found


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise UnmixError(
            f"environment variable {name}={raw[:40]!r} is not an integer; start distributed "
            "runs with torchrun (see docs/distributed.md)"
        ) from None


def resume_after_restart(
    settings: TrainConfig, environ: Mapping[str, str] | None = None
) -> TrainConfig:
    """With ``torchrun --max-restarts``, a restarted worker group continues from the
    checkpoint instead of starting over (``TORCHELASTIC_RESTART_COUNT`` > 0)."""
    env = os.environ if environ is None else environ
    restarts = env.get("TORCHELASTIC_RESTART_COUNT", "0").strip()
    names = network_names(settings.model_config)
    ckpt = checkpoint.checkpoint_path(Path(settings.run.output), names)
    if settings.run.resume or restarts in ("", "0") or not ckpt.is_file():
        return settings
    log.warning("torchrun restart %s: continuing from %s", restarts, ckpt)
    return settings.with_(resume=True, force=False)


def torchrun_command(nproc: int, flags: Sequence[str]) -> list[str]:
    """``torchrun`` on this machine (rendezvous on 127.0.0.1, free port) for ``unmix.train``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc-per-node={nproc}",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",
        "--local-addr=127.0.0.1",
        "-m",
        "unmix.train",
        *flags,
    ]


def failure(code: int) -> str | None:
    """What torchrun's exit status ``code`` says (``None``: success)."""
    if code == 0:
        return None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"torchrun was stopped by {name}; the ranks it started were stopped with it"
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        return f"torchrun was interrupted (exit code {code})"
    return (
        f"a training process failed (torchrun exit code {code}); the failing rank and its "
        "message are listed above"
    )


def launch(nproc: int, flags: Sequence[str]) -> int:
    """``unmix train --nproc N``: run torchrun with ``N`` processes and wait for it.

    Raises:
        UnmixError: a bad ``nproc``, use inside a torchrun job, or a failed job.
    """
    if nproc < 1:
        raise UnmixError(f"--nproc must be at least 1, got {nproc}")
    if Environment.detect().world_size > 1:
        raise UnmixError("--nproc starts torchrun itself; drop it inside a torchrun job")
    command = torchrun_command(nproc, flags)
    log.info("starting %d training processes: %s", nproc, shlex.join(command))
    proc = subprocess.Popen(command)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)  # torchrun stops its workers
        proc.wait()
        raise
    problem = failure(code)
    if problem is not None:
        raise UnmixError(
            f"distributed training failed: {problem}; after fixing the cause, --resume "
            "continues from the last checkpoint"
        )
    return 0
