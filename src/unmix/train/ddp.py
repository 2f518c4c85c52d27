"""Distributed data-parallel training (DDP): what one rank of a torchrun job does.

``torchrun --nproc-per-node N -m unmix.train ...`` (or ``unmix train --nproc N ...``,
see :mod:`unmix.train.launcher`) runs ``N`` copies of the run sequence of
:mod:`unmix.train.run`, one per GPU (NCCL) or on the CPU (gloo), each with a
:class:`DistributedRun` as its place. What a rank does differently from a single process:

* **Data.** Rank ``r`` of ``W`` trains on the global excerpt indices ``r, r + W, ...`` of
  the epoch, and every random draw of an excerpt comes from ``(seed, epoch, index)``
  (:class:`~unmix.data.sampler.ExcerptSampler`), so the ranks draw different excerpts and
  mixes, and together exactly the excerpts of a single-process epoch. Dropout is seeded
  from ``(seed, epoch, rank)``.
* **Gradients** are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`:
  ``W`` ranks with ``--batch-size B`` make the update of one process with batch ``W·B``
  and the same ``--lr`` (no automatic learning-rate scaling).
* **Batch norm** normalises with the statistics of the batch of all ranks together
  (:mod:`unmix.train.batchnorm`), so the equivalence above is exact up to float rounding;
  ``--local-batchnorm`` keeps the seed's per-rank statistics.
* **Validation** songs are split between ranks, and the loss sums are added up, so every
  rank takes the same scheduling and early-stopping decisions.
* **Files and logs:** only rank 0 logs progress, plots and writes the model, reports and
  checkpoint; ``--resume`` reads that checkpoint on every rank.
* **Failures:** a rank that waits longer than ``--dist-timeout`` seconds for the others,
  or loses its connection to them, stops with a one-line error; torchrun then stops the
  remaining processes and exits non-zero.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data import TrainData, build
from ..device import pick_device
from ..errors import UnmixError
from .batchnorm import synchronise_batchnorm
from .config import TrainConfig, data_options
from .launcher import Environment
from .trainer import Trainer
from .units import Unit

log = logging.getLogger(__name__)

#: how long ranks wait while local rank 0 fills the decoded-audio cache
DATA_TIMEOUT = timedelta(hours=4)

#: words of gloo's connection errors, which are plain RuntimeErrors (measured with torch
#: 2.13: "Timed out waiting ... for recv", "Connection closed by peer"); NCCL and the
#: rendezvous store raise :class:`torch.distributed.DistError` subclasses instead
_GLOO_WORDS = ("gloo", "connection", "timed out", "timeout", "broken pipe", "peer")


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
        quiet = settings.run.quiet or env.rank != 0
        super().__init__(settings.with_(quiet=quiet), data, device, env.rank, env.world_size)
        self.env = env
        self.wrapped: dict[str, nn.Module] = {}

    def wrap(self) -> None:
        """Cross-rank batch norm (unless ``--local-batchnorm``) and a DDP wrapper per unit.

        DDP starts every rank from rank 0's parameters and buffers.
        """
        ids = [self.device.index] if self.device.type == "cuda" else None
        for unit in self.units.values():
            if not self.settings.distributed.local_batchnorm:
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
        per_rank = self.settings.optim.batch_size
        out = super().summary()
        out["data"]["excerpts_per_epoch"] = len(self.sampler) * self.world_size
        local = self.settings.distributed.local_batchnorm
        return {
            **out,
            "distributed": {
                "world_size": self.world_size,
                "backend": dist.get_backend() if dist.is_initialized() else "",
                "batch_size_per_rank": per_rank,
                "effective_batch_size": per_rank * self.world_size,
                "batchnorm": "per rank" if local else "across ranks",
            },
        }


def _no_buffer_sync() -> dict[str, Any]:
    """DDP option for "no buffer broadcast before every forward" (buffers are broadcast
    before validation instead); its name changed in torch 2.13."""
    parameters = inspect.signature(DistributedDataParallel.__init__).parameters
    if "forward_sync_buffers" in parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


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


def communication_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says that the other ranks could not be reached in time: a
    :class:`~torch.distributed.DistError`, or one of gloo's plain connection errors."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in _GLOO_WORDS)


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


class DistributedRun:
    """The place of one rank in the run sequence of :mod:`unmix.train.run`."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.group: dist.ProcessGroup | None = None

    @contextlib.contextmanager
    def session(self, settings: TrainConfig) -> Iterator[None]:
        """Progress logs on rank 0 only; failures as one line with this rank's number
        (lost contact with the other ranks named as such), also handed to torchrun.

        Raises:
            UnmixError: user errors and lost contact with the other ranks.
        """
        if self.env.rank != 0:
            logging.getLogger("unmix").setLevel(logging.WARNING)
        try:
            yield
            return
        except UnmixError as exc:
            error = UnmixError(f"rank {self.env.rank}: {exc}")
        except RuntimeError as exc:
            if not communication_failure(exc):
                _record(exc)
                raise
            error = UnmixError(
                f"rank {self.env.rank} of {self.env.world_size} lost contact with the other "
                f"processes ({_reason(exc)}): another rank failed, was killed or did not "
                f"answer within --dist-timeout {settings.distributed.dist_timeout:g} s; see "
                "its messages, fix the cause and continue with --resume"
            )
        _record(error)
        raise error

    def device(self, settings: TrainConfig) -> torch.device:
        """GPU ``local_rank`` or the CPU."""
        return choose_device(settings, self.env)

    def load_data(self, settings: TrainConfig, device: torch.device) -> TrainData:
        """Join the process group; then the songs, local rank 0 first when it fills the
        decoded-audio cache (the others wait on a CPU group with a long timeout)."""
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(seconds=settings.distributed.dist_timeout)
        try:
            dist.init_process_group(
                backend, timeout=timeout, rank=self.env.rank, world_size=self.env.world_size
            )
        except ValueError as exc:  # missing MASTER_ADDR / MASTER_PORT
            raise UnmixError(
                f"cannot join the distributed job ({exc}); start it with torchrun "
                "(see docs/distributed.md)"
            ) from exc
        self.group = dist.new_group(backend="gloo", timeout=DATA_TIMEOUT)
        options = data_options(settings)
        first = options.cache is None or self.env.local_rank == 0
        data = build(settings.data.dataset, options) if first else None
        dist.barrier(group=self.group)
        return data if data is not None else build(settings.data.dataset, options)

    def trainer(self, settings: TrainConfig, data: TrainData, device: torch.device) -> Trainer:
        """A :class:`DistributedTrainer` for this rank."""
        return DistributedTrainer(settings, data, device, self.env)

    def start(self, trainer: Trainer) -> None:
        """Wrap the units for DDP (after the weights are initialised or restored)."""
        assert isinstance(trainer, DistributedTrainer)
        trainer.wrap()

    def describe(self, trainer: Trainer) -> str:
        """Processes, backend, device and batch layout, for the start message."""
        batch = trainer.settings.optim.batch_size
        world = self.env.world_size
        return (
            f"{world} processes ({dist.get_backend()}, {trainer.device.type}): batch {batch} "
            f"per rank = {batch * world} per step, {len(trainer.sampler)} excerpts per rank "
            f"and epoch, {len(trainer.data.valid)} validation songs"
        )

    def finish(self, trainer: Trainer) -> None:
        """Wait until rank 0 has written its last files, then leave the process group."""
        dist.barrier(group=self.group)
        dist.destroy_process_group()
