"""Distributed data-parallel training (DDP) under ``torchrun``.

``torchrun --nproc-per-node N -m unmix.train ...`` (or ``unmix train --nproc N ...``,
which starts torchrun on this machine) runs ``N`` copies of the trainer, one per GPU
(NCCL) or on the CPU (gloo). What each process does differently from a single-process
run:

* **Data.** Rank ``r`` of ``W`` trains on the global excerpt indices ``r, r + W, ...`` of
  the epoch, and every random draw of an excerpt comes from ``(seed, epoch, index)``
  (:class:`~unmix.data.sampler.ExcerptSampler`), so the ranks draw different excerpts and
  mixes, and together exactly the excerpts of a single-process epoch. Dropout is seeded
  from ``(seed, epoch, rank)``.
* **Gradients** are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`:
  ``W`` ranks with ``--batch-size B`` make the update of one process with batch ``W·B``
  and the same ``--lr`` (no automatic learning-rate scaling).
* **Batch norm** normalises with the statistics of the batch of all ranks together
  (:class:`torch.nn.SyncBatchNorm` on GPUs, :class:`CrossRankBatchNorm` elsewhere), so
  the equivalence above is exact up to float rounding; ``--local-batchnorm`` keeps the
  seed's per-rank statistics.
* **Validation** songs are split between ranks, and the loss sums are added up, so every
  rank takes the same scheduling and early-stopping decisions.
* **Files and logs:** only rank 0 logs progress, plots and writes the model, reports and
  checkpoint; ``--resume`` reads that checkpoint on every rank.
* **Failures:** a rank that waits longer than ``--dist-timeout`` seconds for the others,
  or loses its connection to them, stops with a one-line error; torchrun then stops the
  remaining processes and exits non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..data import TrainData, build
from ..errors import UnmixError
from ..loading import pick_device
from . import checkpoint
from .config import TrainConfig
from .trainer import Trainer, Unit

log = logging.getLogger(__name__)

#: how long ranks wait while local rank 0 fills the decoded-audio cache
DATA_TIMEOUT = timedelta(hours=4)

_NETWORK_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout", "broken pipe", "peer")


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

        def number(name: str, default: int) -> int:
            raw = env.get(name, "")
            try:
                return int(raw) if raw.strip() else default
            except ValueError:
                raise UnmixError(
                    f"environment variable {name}={raw!r} is not an integer; start "
                    "distributed runs with torchrun (see docs/distributed.md)"
                ) from None

        world = number("WORLD_SIZE", 1)
        rank = number("RANK", 0)
        found = cls(rank, world, number("LOCAL_RANK", rank), number("LOCAL_WORLD_SIZE", world))
        if world < 1 or not 0 <= rank < world or not 0 <= found.local_rank < world:
            raise UnmixError(
                f"inconsistent torchrun environment: RANK={rank}, LOCAL_RANK="
                f"{found.local_rank}, WORLD_SIZE={world}"
            )
        return found


def choose_device(settings: TrainConfig, env: Environment) -> torch.device:
    """The device of this rank: GPU ``local_rank`` (CUDA) or the CPU.

    Raises:
        UnmixError: MPS, too few GPUs, or a fixed GPU index with several local ranks.
    """
    name = settings.device_name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = pick_device(name)
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise UnmixError(
            f"distributed training runs on CUDA GPUs (NCCL) or on the CPU (gloo), not on "
            f"{device.type}; use --device cuda or --device cpu"
        )
    if device.index is not None and env.local_world_size > 1:
        raise UnmixError(
            f"--device {device} names one GPU but {env.local_world_size} processes run on "
            "this machine; use --device cuda (each rank takes the GPU of its local rank)"
        )
    index = device.index if device.index is not None else env.local_rank
    count = torch.cuda.device_count()
    if index >= count:
        raise UnmixError(
            f"rank {env.rank} needs GPU {index} but this machine has {count}; start at most "
            f"{count} processes per machine (--nproc-per-node)"
        )
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(SUM)`` with a gradient: the gradient is summed over ranks as well."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def _sum_over_ranks(tensor: Tensor) -> Tensor:
    out: Tensor = _SumOverRanks.apply(tensor)  # type: ignore[no-untyped-call]
    return out


class CrossRankBatchNorm(nn.BatchNorm1d):
    """:class:`~torch.nn.BatchNorm1d` normalising with the batch of all ranks together.

    In training, with a process group of several ranks, the mean and (biased) variance
    are those of the rows of every rank's batch (two-pass, float32), with gradients
    flowing through the reductions, as :class:`torch.nn.SyncBatchNorm` does on GPUs; the
    running statistics get the unbiased variance over all rows. Otherwise (evaluation,
    one process) it is a plain ``BatchNorm1d``. Same state dict.

    Input ``(R, F)`` or ``(R, F, L)``: statistics over every axis but ``F``.
    """

    def forward(self, input: Tensor) -> Tensor:
        """Normalised ``input`` (same shape and dtype)."""
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        x = input.float()
        axes = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        rows = x.new_tensor([x.numel() // max(x.shape[1], 1)])
        first = _sum_over_ranks(torch.cat([x.sum(axes), rows]))
        count = first[-1]
        mean = first[:-1] / count
        centred = x - mean.view(shape)
        var = _sum_over_ranks((centred * centred).sum(axes)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None and self.bias is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._track(mean.detach(), var.detach(), float(count.detach()))
        return out.to(input.dtype)

    @torch.no_grad()
    def _track(self, mean: Tensor, var: Tensor, count: float) -> None:
        if self.running_mean is None or self.running_var is None:
            return
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative average, as BatchNorm1d
            factor = 1.0 / float(self.num_batches_tracked or 1)
        else:
            factor = self.momentum
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm1d) -> CrossRankBatchNorm:
        """A :class:`CrossRankBatchNorm` sharing ``bn``'s parameters and buffers."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        new.weight, new.bias = bn.weight, bn.bias
        new.running_mean, new.running_var = bn.running_mean, bn.running_var
        new.num_batches_tracked = bn.num_batches_tracked
        return new.train(bn.training)


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace the batch norms of ``module`` by cross-rank ones (same parameter objects).

    CUDA: :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`; other devices:
    :class:`CrossRankBatchNorm` (``BatchNorm1d`` layers, the only kind our models use).
    """
    if device.type == "cuda":
        converted: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # type: ignore[no-untyped-call]
        return converted
    if type(module) is nn.BatchNorm1d:
        return CrossRankBatchNorm.from_batchnorm(module)
    for name, child in module.named_children():
        new = synchronise_batchnorm(child, device)
        if new is not child:
            module.add_module(name, new)
    return module


class DistributedTrainer(Trainer):
    """:class:`~unmix.train.trainer.Trainer` for one rank of a DDP job.

    Call :meth:`wrap` after :meth:`initialise` or :meth:`restore`, then :meth:`fit`.

    Args:
        settings: resolved settings (``batch_size`` is per rank).
        data: training and validation songs.
        device: this rank's device.
        env: this rank's place in the job (the process group must be initialised).
    """

    def __init__(
        self, settings: TrainConfig, data: TrainData, device: torch.device, env: Environment
    ) -> None:
        quiet = settings.quiet or env.rank != 0
        super().__init__(replace(settings, quiet=quiet), data, device, env.rank, env.world_size)
        self.env = env
        self.wrapped: dict[str, nn.Module] = {}

    def wrap(self) -> None:
        """Cross-rank batch norm (unless ``--local-batchnorm``) and a DDP wrapper per network.

        DDP starts every rank from rank 0's parameters and buffers.
        """
        ids = [self.device.index] if self.device.type == "cuda" else None
        for unit in self.units.values():
            if not self.settings.local_batchnorm:
                unit.model = synchronise_batchnorm(unit.model, self.device)
            self.wrapped[unit.name] = DistributedDataParallel(
                unit.model, device_ids=ids, **_no_buffer_sync()
            )

    def network(self, unit: Unit) -> nn.Module:
        """The DDP wrapper of ``unit`` (gradients averaged over ranks)."""
        return self.wrapped.get(unit.name, unit.model)

    def reduce_totals(self, sums: dict[str, float], count: int) -> tuple[dict[str, float], int]:
        """Sums over ranks, identical on every rank (rank 0's result is broadcast)."""
        names = list(sums)
        values = [sums[n] for n in names] + [float(count)]
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        dist.broadcast(total, 0)
        out = total.tolist()
        return dict(zip(names, out[:-1], strict=True)), int(round(out[-1]))

    def out_of_time(self, began: float) -> bool:
        """Rank 0's ``--max-minutes`` decision, so that all ranks stop after the same epoch."""
        flag = torch.tensor([float(super().out_of_time(began))], device=self.device)
        dist.broadcast(flag, 0)
        return bool(flag.item())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Rank 0's buffers (batch-norm running statistics) to every rank, then validation
        on this rank's share of the songs, summed over ranks."""
        for unit in self.units.values():
            for buffer in unit.model.buffers():
                dist.broadcast(buffer, 0)
        return super().validate()

    def summary(self) -> dict[str, Any]:
        """``training.json`` with the distributed layout."""
        per_rank = self.settings.batch_size
        out = super().summary()
        out["data"]["excerpts_per_epoch"] = len(self.sampler) * self.world_size
        return {
            **out,
            "distributed": {
                "world_size": self.world_size,
                "backend": dist.get_backend() if dist.is_initialized() else "",
                "batch_size_per_rank": per_rank,
                "effective_batch_size": per_rank * self.world_size,
                "batchnorm": "per rank" if self.settings.local_batchnorm else "across ranks",
            },
        }


def _no_buffer_sync() -> dict[str, Any]:
    """DDP option for "no buffer broadcast before every forward" (buffers are broadcast
    before validation instead); its name changed in torch 2.13."""
    parameters = inspect.signature(DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def _init_group(device: torch.device, env: Environment, timeout: float) -> dist.ProcessGroup:
    """Join the job's default process group; returns a CPU (gloo) group for long waits."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(
            backend, timeout=timedelta(seconds=timeout), rank=env.rank, world_size=env.world_size
        )
    except ValueError as exc:  # missing MASTER_ADDR / MASTER_PORT
        raise UnmixError(
            f"cannot join the distributed job ({exc}); start it with torchrun "
            "(see docs/distributed.md)"
        ) from exc
    group: dist.ProcessGroup = dist.new_group(backend="gloo", timeout=DATA_TIMEOUT)
    return group


def _load_data(settings: TrainConfig, env: Environment, group: dist.ProcessGroup) -> TrainData:
    """Songs for this rank; with a decoded-audio cache, local rank 0 fills it first."""
    from . import data_options

    options = data_options(settings)
    first = options.cache is None or env.local_rank == 0
    data = build(settings.dataset, options) if first else None
    dist.barrier(group=group)
    return data if data is not None else build(settings.dataset, options)


def _configure_logging(env: Environment) -> None:
    """Progress messages on rank 0 only; the other ranks report warnings and errors."""
    if env.rank != 0:
        logging.getLogger("unmix").setLevel(logging.WARNING)


def communication_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says that the other ranks could not be reached in time."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in _NETWORK_WORDS)


def _reason(exc: BaseException) -> str:
    """The gist of a backend error: its last line's first sentence, without the source
    location gloo puts in front."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    text = re.sub(r"^\[[^\]]*\]\s*", "", lines[-1].strip())
    return text.split(". ")[0][:200]


def _record(error: BaseException) -> None:
    """Hand the message to torchrun, which shows it in its failure summary (the error file
    torchrun names in ``TORCHELASTIC_ERROR_FILE``)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with contextlib.suppress(OSError):
            info = {"py_callstack": str(error), "timestamp": str(int(time.time()))}
            message = {"message": f"{type(error).__name__}: {error}", "extraInfo": info}
            Path(path).write_text(json.dumps({"message": message}))


def resume_after_restart(
    settings: TrainConfig, environ: Mapping[str, str] | None = None
) -> TrainConfig:
    """With ``torchrun --max-restarts``, a restarted worker group continues from the
    checkpoint instead of starting over (``TORCHELASTIC_RESTART_COUNT`` > 0)."""
    from . import _network_names

    env = os.environ if environ is None else environ
    restarts = env.get("TORCHELASTIC_RESTART_COUNT", "0").strip()
    ckpt = checkpoint.checkpoint_path(Path(settings.output), _network_names(settings))
    if settings.resume or restarts in ("", "0") or not ckpt.is_file():
        return settings
    log.warning("torchrun restart %s: continuing from %s", restarts, ckpt)
    return replace(settings, resume=True)


def train(settings: TrainConfig, given: set[str] | None, env: Environment) -> Trainer:
    """Run this rank's part of a distributed training run (called on every rank).

    Raises:
        UnmixError: user errors, and lost contact with the other ranks (one line, with
            this rank's number).
    """
    _configure_logging(env)
    try:
        return _train(settings, given, env)
    except UnmixError as exc:
        error = UnmixError(f"rank {env.rank}: {exc}")
    except RuntimeError as exc:
        if not communication_failure(exc):
            _record(exc)
            raise
        error = UnmixError(
            f"rank {env.rank} of {env.world_size} lost contact with the other processes "
            f"({_reason(exc)}): another rank failed, was killed or did not answer within "
            f"--dist-timeout {settings.dist_timeout:g} s; see its messages, fix the cause "
            "and continue with --resume"
        )
    _record(error)
    raise error


def _train(settings: TrainConfig, given: set[str] | None, env: Environment) -> Trainer:
    from . import prepare

    settings, state = prepare(resume_after_restart(settings), given)
    device = choose_device(settings, env)
    group = _init_group(device, env, settings.dist_timeout)
    trainer = DistributedTrainer(settings, _load_data(settings, env, group), device, env)
    if state is not None:
        trainer.restore(state)
    else:
        trainer.initialise()
    trainer.wrap()
    log.info(
        "training %s on %d processes (%s, %s): batch %d per rank = %d per step, "
        "%d excerpts per rank and epoch, %d validation songs",
        "+".join(trainer.names),
        env.world_size,
        dist.get_backend(),
        device.type,
        settings.batch_size,
        settings.batch_size * env.world_size,
        len(trainer.sampler),
        len(trainer.data.valid),
    )
    trainer.fit()
    dist.barrier(group=group)  # rank 0 has written its last files
    dist.destroy_process_group()
    if env.rank == 0:
        from . import report_saved

        report_saved(trainer.output)
    return trainer


def flags_from_args(args: argparse.Namespace) -> list[str]:
    """The ``unmix train`` flags given in ``args`` (``--config`` and settings), as argv."""
    given = vars(args)
    out: list[str] = []
    if given.get("config") is not None:
        out += ["--config", str(given["config"])]
    for f in fields(TrainConfig):
        if f.name not in given:
            continue
        flag = (f.metadata.get("flags") or (f"--{f.name.replace('_', '-')}",))[0]
        value = given[f.name]
        if isinstance(value, bool):
            out += [flag] if value else []
        elif isinstance(value, list | tuple):
            out += [flag, *map(str, value)]
        else:
            out.append(f"{flag}={value}")
    return out


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
    if code != 0:
        raise UnmixError(
            f"distributed training failed (torchrun exit code {code}); the failing rank and "
            "its message are listed above"
        )
    return 0
