"""The training loop: the units of one model trained on the same batches.

Each unit (:mod:`unmix.train.units`) has its own Adam optimiser, plateau LR schedule and
early stopping. After every epoch the whole state goes to an atomic checkpoint, and then
the best weights to the output folder (a loadable model folder) with the reports; from
the checkpoint ``--resume`` continues exactly: every random draw is derived from
``(seed, epoch, ...)``, so a resumed run ends with the same weights as an uninterrupted
one. Because the checkpoint is written first, a run killed at any moment can be resumed:
the weights of the last checkpointed epoch are written again when it resumes.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import ExcerptDataset, ExcerptSampler, TrainData, ValidationSet
from ..errors import UnmixError
from ..hub import save_model
from . import checkpoint, report
from .config import TrainConfig
from .stats import input_statistics
from .units import Unit, build_units, derive_seed
from .warmstart import load_initial_weights

log = logging.getLogger(__name__)

_EPOCH = 0xE90C


class Trainer:
    """Trains the units of one run.

    Args:
        settings: resolved settings.
        data: training and validation songs.
        device: where to train.
        rank, world_size: distributed position: the sampler draws this rank's excerpts,
            validation takes songs ``rank, rank + world_size, ...``, and only rank 0 writes
            files. The reductions across ranks are :mod:`unmix.train.ddp`'s job
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
        self.config = settings.model_config
        self.output = Path(settings.run.output)
        self.sampler = ExcerptSampler(
            [s.length for s in data.train],
            data.sources,
            settings.seq_len,
            settings.data.samples_per_track,
            settings.optim.seed,
            random_mix=data.random_mix,
            augmentations=() if data.use_mixture else settings.data.source_augmentations,
            rank=rank,
            world_size=world_size,
            pools=data.pools,
        )
        self.validation = ValidationSet(data.valid[rank::world_size], self.config.targets)
        self.writes = rank == 0
        self.model, self.units = build_units(self.config, settings.optim, device)
        self.epoch = 0
        self.seconds = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        """Unit names (checkpoint, report and weight-file names)."""
        return tuple(self.units)

    def initialise(self) -> None:
        """Input statistics from the training mixtures (whole songs, no augmentation), or
        the weights and statistics of the ``--init`` model."""
        if self.settings.run.init:
            load_initial_weights(self.model, self.config, self.settings.run.init)
            report.merged_config(self.output, self.config)
            return
        log.info("input statistics over %d training songs", len(self.data.train))
        mean, std = input_statistics(
            (song.mix() for song in self.data.train), self.config.n_fft, self.config.n_hop
        )
        self.model.set_input_statistics(mean.to(self.device), std.to(self.device))
        report.merged_config(self.output, self.config)  # refuses an incompatible folder

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
        """Continue from a checkpoint written by :meth:`state`; writes the weights of its
        last epoch again (a run killed after the checkpoint may not have written them)."""
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
                self.world_size * self.settings.optim.batch_size,
                saved * self.settings.optim.batch_size,
            )
        log.info("resuming after epoch %d from %s", self.epoch, self.checkpoint_file)
        if self.writes and self.epoch > 0:
            last = [u for u in self.units.values() if u.best_epoch == self.epoch - 1]
            self._written(lambda: self.publish(last))

    def active(self) -> list[Unit]:
        """Units that have not stopped early."""
        return [u for u in self.units.values() if not u.stopped]

    def fit(self) -> None:
        """Train until ``epochs`` or until every unit stopped early."""
        began = time.perf_counter()
        while self.epoch < self.settings.optim.epochs and self.active():
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
        limit = self.settings.run.max_minutes * 60.0
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
        batch = self.settings.optim.batch_size if self.settings.seq_len else 1
        return DataLoader(
            dataset,
            batch_size=batch,
            shuffle=False,
            num_workers=self.settings.data.nb_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the epoch's excerpts; returns the mean loss per unit."""
        torch.manual_seed(derive_seed(self.settings.optim.seed, _EPOCH, epoch, self.rank))
        units = self.active()
        for unit in units:
            unit.model.train()
        sums = dict.fromkeys(self.units, 0.0)
        count = 0
        bar = tqdm(
            self._loader(epoch),
            desc=f"epoch {epoch + 1}/{self.settings.optim.epochs}",
            disable=self.settings.run.quiet,
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
        amp = self.settings.optim.amp
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
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
        """Schedules, early stopping and histories; then the checkpoint, and after it the
        best weights and the reports."""
        improved: list[Unit] = []
        for name, loss in valid.items():
            unit = self.units[name]
            unit.history["train_loss"].append(train[name])
            unit.history["valid_loss"].append(loss)
            unit.history["lr"].append(float(unit.optimizer.param_groups[0]["lr"]))
            unit.history["seconds"].append(seconds)
            unit.scheduler.step(loss)
            better = unit.stopper.best is None or loss < unit.stopper.best
            unit.stopped = unit.stopper.step(loss)
            if better and not math.isnan(loss):
                unit.best_epoch = self.epoch
                improved.append(unit)
            log.info(
                "epoch %d %s: train %.5g valid %.5g%s",
                self.epoch + 1,
                name,
                train[name],
                loss,
                " (best)" if better else (" (stopped)" if unit.stopped else ""),
            )
        self.epoch += 1
        if self.writes:
            self._written(lambda: checkpoint.save(self.checkpoint_file, self.state()))
            self._written(lambda: self.publish(improved))

    def _written(self, write: Callable[[], object]) -> None:
        """Run ``write()``; a failed write (e.g. a full disk) becomes one line that names
        the disk and says that the last checkpoint is intact."""
        try:
            write()
        except OSError as exc:
            raise checkpoint.write_error(exc, self.output) from exc

    def publish(self, improved: list[Unit]) -> None:
        """The best weights of ``improved`` units (with ``config.json``) and the reports."""
        for unit in improved:
            merged = report.merged_config(self.output, self.config)
            save_model(self.output, merged, self.model, files=[unit.name])
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
