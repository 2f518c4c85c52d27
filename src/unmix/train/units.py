"""What a run trains: the model, built through the architecture table, and its training
units (each a submodule with its own objective, Adam optimiser, plateau schedule, early
stopping and history).

The trainer knows no architecture: :func:`build_units` asks
:func:`~unmix.models.architectures.get_architecture` for the model and its
:class:`~unmix.models.architectures.TrainingUnit` list. A unit's name is its checkpoint,
report and weight-file name (a target, or the architecture's name for a joint network).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..config import ModelConfig
from ..models.architectures import get_architecture
from ..models.contract import SeparationModel
from .sections import OptimSettings

_INIT = 0x1417


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
    """One trained network (a submodule of the model) with its optimiser state and history.

    Attributes:
        index: positions in the model's targets that its loss covers.
        objective: ``objective(model, mix (S, C, T), targets (S, len(index), C, T))``.
    """

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


def network_names(config: ModelConfig) -> tuple[str, ...]:
    """The names of the units a run of ``config`` trains (checkpoint and report names)."""
    return tuple(u.name for u in get_architecture(config.arch).training_units(config))


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


def build_units(
    config: ModelConfig, optim: OptimSettings, device: torch.device
) -> tuple[SeparationModel, dict[str, Unit]]:
    """The untrained model of ``config`` on ``device`` and its training units, in order.

    Unit ``k`` is initialised from the seed ``(seed, k)``: its submodule is taken from a
    model built, under that seed, for the unit's own targets only, so a unit's initial
    weights do not depend on the other units. Units whose objectives come from the same
    builder share one objective (e.g. one mixture STFT per batch for per-target networks).
    The global random state is left as it was.
    """
    arch = get_architecture(config.arch)
    specs = arch.training_units(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(optim.seed, _INIT))
        model = arch.build(config)
        for k, spec in enumerate(specs):
            own = config.with_(targets=tuple(config.targets[i] for i in spec.indices))
            torch.manual_seed(derive_seed(optim.seed, _INIT, k))
            fresh = arch.build(own).get_submodule(spec.module)
            model.get_submodule(spec.module).load_state_dict(fresh.state_dict())
    model.to(device)
    objectives: dict[Any, nn.Module] = {}
    units: dict[str, Unit] = {}
    for spec in specs:
        if spec.objective not in objectives:
            objectives[spec.objective] = spec.objective(config).to(device)
        module = model.get_submodule(spec.module)
        optimizer = make_optimizer(module, optim.lr, optim.weight_decay, device)
        scheduler = ReduceLROnPlateau(
            optimizer, factor=optim.lr_decay_gamma, patience=optim.lr_decay_patience, cooldown=10
        )
        units[spec.name] = Unit(
            spec.name,
            module,
            objectives[spec.objective],
            list(spec.indices),
            optimizer,
            scheduler,
            EarlyStopping(optim.patience),
        )
    return model, units
