"""The table of separation architectures: the only place that knows their names.

Each :class:`Architecture` says how to build its model, how it is trained (one or more
:class:`TrainingUnit`), which weight files a model folder holds, and how it is imported
from NNabla. Behaviour that needs a built model is a method of the model instead (the
:class:`~unmix.models.contract.SeparationModel` contract): ``select_targets`` (X-UMX
computes every branch and keeps some outputs; UMX drops the other branches) and
``set_input_statistics``. Adding an architecture is one entry here plus its module in
:mod:`unmix.models`.

This module is light (no PyTorch at import): :mod:`unmix.config` validates
``ModelConfig.arch`` against :data:`ARCHITECTURES`, and ``unmix --help`` must stay fast.
The networks and losses are imported when a model or an objective is first built; none
of them imports this module or :mod:`unmix.config` at run time (only for type checking),
so there is no cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import UnmixError

if TYPE_CHECKING:
    from torch import nn

    from ..config import ModelConfig
    from .contract import SeparationModel


@dataclass(frozen=True)
class TrainingUnit:
    """A part of a model that is trained (and saved) on its own.

    Attributes:
        name: checkpoint / report / weight-file stem: a target (UMX) or the architecture.
        module: submodule path inside the full model that this unit trains (``""``: all).
        indices: positions in ``config.targets`` that its loss covers.
        objective: builds its loss ``loss(module, mix (S, C, T), targets (S, J_unit, C, T))``.
    """

    name: str
    module: str
    indices: tuple[int, ...]
    objective: Callable[[ModelConfig], nn.Module]


@dataclass(frozen=True)
class Architecture:
    """One architecture's entry in the table.

    Attributes:
        name: value of ``ModelConfig.arch``.
        label: name for people (``"X-UMX"``).
        build: untrained model for ``config.targets``.
        training_units: what the trainer trains, in order.
        weight_files: ``{file stem: submodule path}`` of a model folder (``""``: the whole
            model); ``<stem>.safetensors`` (or ``<stem>.pth``) loads strictly into it.
        nnabla_joint: its NNabla release is one joint ``.h5`` (``True``) or one ``.h5`` per
            target (``False``); ``None``: not imported from NNabla.
    """

    name: str
    label: str
    build: Callable[[ModelConfig], SeparationModel]
    training_units: Callable[[ModelConfig], tuple[TrainingUnit, ...]]
    weight_files: Callable[[ModelConfig], dict[str, str]]
    nnabla_joint: bool | None = None


def _build_umx(config: ModelConfig) -> SeparationModel:
    from .umx import UMX

    return UMX.from_config(config)


def _build_xumx(config: ModelConfig) -> SeparationModel:
    from .xumx import XUMX

    return XUMX.from_config(config)


def _spectrogram_mse(config: ModelConfig) -> nn.Module:
    from ..losses import SpectrogramMSE

    return SpectrogramMSE(config)


def _xumx_loss(config: ModelConfig) -> nn.Module:
    from ..losses import XUMXLoss

    return XUMXLoss(config)


def _umx_units(config: ModelConfig) -> tuple[TrainingUnit, ...]:
    return tuple(
        TrainingUnit(t, f"branches.{t}", (j,), _spectrogram_mse)
        for j, t in enumerate(config.targets)
    )


def _xumx_units(config: ModelConfig) -> tuple[TrainingUnit, ...]:
    return (TrainingUnit("xumx", "", tuple(range(len(config.targets))), _xumx_loss),)


_TABLE = (
    Architecture(
        name="umx",
        label="UMX",
        build=_build_umx,
        training_units=_umx_units,
        weight_files=lambda config: {t: f"branches.{t}" for t in config.targets},
        nnabla_joint=False,
    ),
    Architecture(
        name="xumx",
        label="X-UMX",
        build=_build_xumx,
        training_units=_xumx_units,
        weight_files=lambda config: {"xumx": ""},
        nnabla_joint=True,
    ),
)

#: ``{name: Architecture}``, read-only.
ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType({a.name: a for a in _TABLE})

#: the architecture of a config that does not name one
DEFAULT_ARCH = "umx"


def get_architecture(name: str) -> Architecture:
    """The entry of ``name``.

    Raises:
        UnmixError: an unknown name, naming the known ones.
    """
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise UnmixError(
            f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}"
        ) from None


def nnabla_architecture(joint: bool) -> Architecture:
    """The architecture an NNabla release imports into (joint file or per-target files)."""
    return next(a for a in _TABLE if a.nnabla_joint is joint)
