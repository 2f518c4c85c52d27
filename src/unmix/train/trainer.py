"""The training loop: one or several networks trained on the same batches.

UMX trains one :class:`~unmix.model.OpenUnmix` per target (they share every batch and
the mixture STFT); X-UMX trains one joint network. Each network has its own Adam
optimiser, plateau LR schedule and early stopping. After every epoch the best weights
go to the output folder (a loadable model folder) and the whole state to an atomic
checkpoint, from which ``--resume`` continues exactly: every random draw is derived
from ``(seed, epoch, ...)``, so a resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import ModelConfig
from ..data import ExcerptDataset, ExcerptSampler, TrainData, ValidationSet
from ..errors import UnmixError
from ..loading import save_model
from ..model import OpenUnmix
from ..transforms import bandwidth_to_max_bin
from . import checkpoint, report
from .config import TrainConfig
from .objectives import SpectrogramMSE
from .stats import input_statistics

log = logging.getLogger(__name__)

_INIT, _EPOCH = 0x1417, 0xE90C


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> 1)


@dataclass
class EarlyStopping:
    """Stop when the loss has not improved for ``patience`` epochs (a NaN stops at once).

    The first value only sets ``best``; an epoch is bad unless ``loss < best``.
    """

    patience: int
    best: float | None = None
    bad: int = 0

    def step(self, loss: float) -> bool:
        """Record ``loss``; returns True when training should stop."""
        if math.isnan(loss):
            return True
        if self.best is None or loss < self.best:
            self.best, self.bad = loss, 0
            return False
        self.bad += 1
        return self.bad >= self.patience


@dataclass
class Unit:
    """One trained network with its optimiser state and history."""

    name: str
    model: nn.Module
    objective: Callable[[nn.Module, Tensor, Tensor], Tensor]
    index: list[int]
    optimizer: torch.optim.Optimizer
    scheduler: ReduceLROnPlateau
    stopper: EarlyStopping
    history: dict[str, list[float]] = field(
        default_factory=lambda: {"train_loss": [], "valid_loss": [], "lr": [], "seconds": []}
    )
    best_epoch: int = -1
    stopped: bool = False

    def state(self) -> dict[str, Any]:
        """Plain-data state for the checkpoint."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stopper": {"best": self.stopper.best, "bad": self.stopper.bad},
            "history": self.history,
            "best_epoch": self.best_epoch,
            "stopped": self.stopped,
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stopper.best = state["stopper"]["best"]
        self.stopper.bad = int(state["stopper"]["bad"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.best_epoch = int(state["best_epoch"])
        self.stopped = bool(state["stopped"])


def model_config(settings: TrainConfig) -> ModelConfig:
    """The :class:`ModelConfig` the run trains."""
    return ModelConfig(
        targets=settings.targets,
        sample_rate=settings.sample_rate,
        n_fft=settings.nfft,
        n_hop=settings.nhop,
        nb_channels=settings.nb_channels,
        hidden_size=settings.hidden_size,
        nb_layers=settings.nb_layers,
        max_bin=bandwidth_to_max_bin(settings.sample_rate, settings.nfft, settings.bandwidth),
        unidirectional=settings.unidirectional,
        arch=settings.arch,
    )


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, device: torch.device
) -> torch.optim.Optimizer:
    """Adam (coupled L2 weight decay), with the fused kernel where the device has one."""
    params = list(model.parameters())
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError):  # pragma: no cover - builds without fused Adam
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _xumx_parts(config: ModelConfig) -> tuple[nn.Module, Any]:
    try:
        xumx = importlib.import_module("unmix.xumx")
        losses = importlib.import_module("unmix.losses")
        return xumx.XUMX.from_config(config), losses.XUMXLoss(config)
    except (ImportError, AttributeError) as exc:
        raise UnmixError(
            f"--arch xumx needs unmix.xumx.XUMX and unmix.losses.XUMXLoss, which are not "
            f"available in this installation ({exc})"
        ) from exc


def set_input_statistics(model: nn.Module, mean: Tensor, std: Tensor) -> None:
    """Store ``-mean`` and ``1/std`` (first ``B`` bins) in a model's input layer."""
    setter = getattr(model, "set_input_statistics", None)
    if callable(setter):
        setter(mean, std)
        return
    if isinstance(model, OpenUnmix):
        with torch.no_grad():
            model.input_mean.copy_(-mean[: model.nb_bins])
            model.input_scale.copy_(1.0 / std[: model.nb_bins])
        return
    branches = getattr(model, "branches", None)
    if isinstance(branches, nn.ModuleDict):
        for branch in branches.values():
            set_input_statistics(branch, mean, std)
        return
    log.warning("%s has no input statistics to set", type(model).__name__)


class Trainer:
    """Trains the networks of one run.

    Args:
        settings: resolved settings.
        data: training and validation songs.
        device: where to train.
        rank, world_size: distributed position: the sampler draws this rank's excerpts,
            validation takes songs ``rank, rank + world_size, ...``, and only rank 0 writes
            files. The reductions across ranks are :mod:`unmix.train.distributed`'s job
            (:meth:`reduce_totals`, :meth:`network`, :meth:`out_of_time` are its hooks).
    """

    def __init__(
        self,
        settings: TrainConfig,
        data: TrainData,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.settings = settings
        self.data = data
        self.device = device
        self.rank = rank
        self.world_size = world_size
        self.config = model_config(settings)
        self.output = Path(settings.output)
        self.sampler = ExcerptSampler(
            [s.length for s in data.train],
            data.sources,
            settings.seq_len,
            settings.samples_per_track,
            settings.seed,
            random_mix=data.random_mix,
            augmentations=() if data.use_mixture else settings.source_augmentations,
            rank=rank,
            world_size=world_size,
            pools=data.pools,
        )
        self.validation = ValidationSet(data.valid[rank::world_size], self.config.targets)
        self.writes = rank == 0
        self.units = self._build_units()
        self.epoch = 0
        self.seconds = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        """Network names: the targets (UMX) or ``("xumx",)``."""
        return tuple(self.units)

    def _build_units(self) -> dict[str, Unit]:
        s = self.settings
        jobs: list[tuple[str, list[int]]]
        if s.arch == "xumx":
            jobs = [("xumx", list(range(len(self.config.targets))))]
        else:
            jobs = [(t, [j]) for j, t in enumerate(self.config.targets)]
        shared = SpectrogramMSE(self.config).to(self.device) if s.arch == "umx" else None
        units: dict[str, Unit] = {}
        for k, (name, index) in enumerate(jobs):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(s.seed, _INIT, k))
                if shared is None:
                    model, objective = _xumx_parts(self.config)
                    objective = objective.to(self.device)
                else:
                    model, objective = OpenUnmix.from_config(self.config), shared
            model = model.to(self.device)
            optimizer = make_optimizer(model, s.lr, s.weight_decay, self.device)
            scheduler = ReduceLROnPlateau(
                optimizer, factor=s.lr_decay_gamma, patience=s.lr_decay_patience, cooldown=10
            )
            units[name] = Unit(
                name, model, objective, index, optimizer, scheduler, EarlyStopping(s.patience)
            )
        return units

    def initialise(self) -> None:
        """Input statistics from the training mixtures (whole songs, no augmentation)."""
        log.info("input statistics over %d training songs", len(self.data.train))
        mean, std = input_statistics(
            (song.mix() for song in self.data.train), self.config.n_fft, self.config.n_hop
        )
        for unit in self.units.values():
            set_input_statistics(unit.model, mean.to(self.device), std.to(self.device))
        existing = report.merged_config(self.output, self.config)
        del existing  # only checks that the folder does not hold an incompatible model

    @property
    def checkpoint_file(self) -> Path:
        """Where this run's checkpoint lives."""
        return checkpoint.checkpoint_path(self.output, self.names)

    def state(self) -> dict[str, Any]:
        """Everything needed to continue (plain data)."""
        return {
            "epoch": self.epoch,
            "seconds": self.seconds,
            "settings": self.settings.to_dict(),
            "model_config": self.config.to_dict(),
            "units": {n: u.state() for n, u in self.units.items()},
            "rng": {"torch": torch.get_rng_state()},
            "world_size": self.world_size,
            "versions": report.versions(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`state`."""
        if sorted(state["units"]) != sorted(self.units):
            raise UnmixError(
                f"checkpoint holds {sorted(state['units'])}, this run trains {sorted(self.units)}"
            )
        for name, unit in self.units.items():
            unit.load(state["units"][name])
        self.epoch = int(state["epoch"])
        self.seconds = float(state["seconds"])
        torch.set_rng_state(state["rng"]["torch"])
        saved = int(state.get("world_size", 1))
        if saved != self.world_size:
            log.warning(
                "the checkpoint was trained on %d process(es), this run has %d: the remaining "
                "epochs are split into other batches (effective batch %d instead of %d)",
                saved,
                self.world_size,
                self.world_size * self.settings.batch_size,
                saved * self.settings.batch_size,
            )
        log.info("resuming after epoch %d from %s", self.epoch, self.checkpoint_file)

    def active(self) -> list[Unit]:
        """Networks that have not stopped early."""
        return [u for u in self.units.values() if not u.stopped]

    def fit(self) -> None:
        """Train until ``epochs`` or until every network stopped early."""
        began = time.perf_counter()
        while self.epoch < self.settings.epochs and self.active():
            start = time.perf_counter()
            train = self.train_epoch(self.epoch)
            valid = self.validate()
            self.seconds += time.perf_counter() - start
            self.end_epoch(train, valid, time.perf_counter() - start)
            if self.out_of_time(began):
                log.info("stopping after epoch %d: --max-minutes reached", self.epoch)
                break
        if not self.active():
            log.info("every network stopped early after epoch %d", self.epoch)

    def out_of_time(self, began: float) -> bool:
        """True once ``--max-minutes`` have passed since ``began`` (a ``perf_counter`` time)."""
        limit = self.settings.max_minutes * 60.0
        return bool(limit) and time.perf_counter() - began > limit

    def network(self, unit: Unit) -> nn.Module:
        """The module a training step calls (a distributed run wraps ``unit.model``)."""
        return unit.model

    def reduce_totals(self, sums: dict[str, float], count: int) -> tuple[dict[str, float], int]:
        """Loss sums and item count over every process (one process: unchanged)."""
        return sums, count

    def _loader(self, epoch: int) -> DataLoader[tuple[Tensor, Tensor]]:
        dataset = ExcerptDataset(
            self.data.train, self.sampler, self.config.targets, epoch, self.data.use_mixture
        )
        batch = self.settings.batch_size if self.settings.seq_len else 1
        return DataLoader(
            dataset,
            batch_size=batch,
            shuffle=False,
            num_workers=self.settings.nb_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the epoch's excerpts; returns the mean loss per network."""
        torch.manual_seed(derive_seed(self.settings.seed, _EPOCH, epoch, self.rank))
        units = self.active()
        for unit in units:
            unit.model.train()
        sums = dict.fromkeys(self.units, 0.0)
        count = 0
        bar = tqdm(
            self._loader(epoch),
            desc=f"epoch {epoch + 1}/{self.settings.epochs}",
            disable=self.settings.quiet,
            leave=False,
            file=sys.stderr,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
        )
        for mix, targets in bar:
            mix = mix.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
            for unit in units:
                sums[unit.name] += self.step(unit, mix, targets) * mix.shape[0]
            count += mix.shape[0]
            bar.set_postfix(loss=f"{sum(sums.values()) / max(count, 1) / len(units):.4g}")
        self._forget()
        sums, count = self.reduce_totals(sums, count)
        return {u.name: sums[u.name] / max(count, 1) for u in units}

    def step(self, unit: Unit, mix: Tensor, targets: Tensor) -> float:
        """One optimisation step of ``unit`` on a batch; returns the loss."""
        unit.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.amp):
            loss = unit.objective(self.network(unit), mix, targets[:, unit.index])
        loss.backward()  # type: ignore[no-untyped-call]
        unit.optimizer.step()
        return float(loss.detach())

    def _forget(self) -> None:
        for unit in self.units.values():
            forget = getattr(unit.objective, "forget", None)
            if callable(forget):
                forget()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss over the whole validation songs (real mixture, batch 1)."""
        units = self.active()
        for unit in units:
            unit.model.eval()
        sums = dict.fromkeys(self.units, 0.0)
        for mix, targets in self.validation:
            mix = mix[None].to(self.device)
            targets = targets[None].to(self.device)
            for unit in units:
                sums[unit.name] += float(unit.objective(unit.model, mix, targets[:, unit.index]))
        self._forget()
        sums, count = self.reduce_totals(sums, len(self.validation))
        return {u.name: sums[u.name] / max(count, 1) for u in units}

    def end_epoch(self, train: dict[str, float], valid: dict[str, float], seconds: float) -> None:
        """Schedules, early stopping, best weights, histories and the checkpoint."""
        for name, loss in valid.items():
            unit = self.units[name]
            unit.history["train_loss"].append(train[name])
            unit.history["valid_loss"].append(loss)
            unit.history["lr"].append(float(unit.optimizer.param_groups[0]["lr"]))
            unit.history["seconds"].append(seconds)
            unit.scheduler.step(loss)
            improved = unit.stopper.best is None or loss < unit.stopper.best
            unit.stopped = unit.stopper.step(loss)
            if improved and not math.isnan(loss):
                unit.best_epoch = self.epoch
                if self.writes:
                    self._save_best(unit)
            log.info(
                "epoch %d %s: train %.5g valid %.5g%s",
                self.epoch + 1,
                name,
                train[name],
                loss,
                " (best)" if improved else (" (stopped)" if unit.stopped else ""),
            )
        self.epoch += 1
        if self.writes:
            self._write_reports()
            checkpoint.save(self.checkpoint_file, self.state())

    def _save_best(self, unit: Unit) -> None:
        if unit.name == "xumx":
            save_model(self.output, self.config, {"xumx": unit.model})
            return
        merged = report.merged_config(self.output, self.config)
        save_model(self.output, merged, {unit.name: unit.model})

    def _write_reports(self) -> None:
        for name, unit in self.units.items():
            summary = {
                "best_epoch": unit.best_epoch + 1,
                "best_valid_loss": unit.stopper.best,
                "stopped_early": unit.stopped,
                **unit.history,
            }
            report.write_json(self.output / f"{name}.history.json", summary)
            if unit.history["train_loss"]:
                report.plot_history(self.output / f"{name}.history.png", name, unit.history)
        report.write_json(self.output / "training.json", self.summary())

    def summary(self) -> dict[str, Any]:
        """Contents of ``training.json``."""
        return {
            "settings": self.settings.to_dict(),
            "model_config": self.config.to_dict(),
            "epochs_trained": self.epoch,
            "training_seconds": round(self.seconds, 1),
            "networks": {
                n: {
                    "best_epoch": u.best_epoch + 1,
                    "best_valid_loss": u.stopper.best,
                    "stopped_early": u.stopped,
                }
                for n, u in self.units.items()
            },
            "data": {
                "train_tracks": [s.name for s in self.data.train],
                "valid_tracks": [s.name for s in self.data.valid],
                "excerpts_per_epoch": len(self.sampler),
            },
            "versions": report.versions(),
        }
