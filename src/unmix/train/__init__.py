"""Training: ``unmix train`` / ``python -m unmix.train`` (see ``docs/training.md``).

Modules: :mod:`~unmix.train.config` (settings), :mod:`~unmix.train.flags` (the flags),
:mod:`~unmix.train.configfile` (``--config`` files), :mod:`~unmix.train.run` (the run
sequence), :mod:`~unmix.train.trainer` (the epoch loop), :mod:`~unmix.train.units` (what
is trained), :mod:`~unmix.train.checkpoint`, :mod:`~unmix.train.report`,
:mod:`~unmix.train.stats`, :mod:`~unmix.train.ddp` and :mod:`~unmix.train.batchnorm`
(distributed runs), :mod:`~unmix.train.launcher` (torchrun).
"""

from .config import TrainConfig, data_options
from .run import prepare, train
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "data_options", "prepare", "train"]
