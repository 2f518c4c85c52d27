"""``unmix train --init MODEL``: start a run from a trained model's weights and input
statistics instead of random weights and statistics of the training mixtures (fine-tuning).

The model may be a registry name (``umx-preview``) or a model folder; its configuration
must equal the run's (targets aside: the run may train a subset of the model's targets).
"""

from __future__ import annotations

import logging

from torch import nn

from ..config import ModelConfig
from ..errors import UnmixError
from ..hub.loading import load_model

log = logging.getLogger(__name__)

#: configuration fields that must match between ``--init`` and the run
MATCHED = (
    "arch",
    "sample_rate",
    "n_fft",
    "n_hop",
    "nb_channels",
    "hidden_size",
    "nb_layers",
    "max_bin",
    "unidirectional",
)


def config_mismatch(source: str, init: ModelConfig, run: ModelConfig) -> str | None:
    """One line saying how ``init`` (the ``--init`` model) cannot start ``run``, or ``None``."""
    for name in MATCHED:
        have, want = getattr(init, name), getattr(run, name)
        if have != want:
            flag = name.replace("_", "-")
            return (
                f"--init {source}: its {name} is {have!r}, this run's is {want!r}; train with "
                f"the model's settings (--{flag} {have}) or drop --init"
            )
    missing = [t for t in run.targets if t not in init.targets]
    if missing:
        return (
            f"--init {source} has no weights for {', '.join(missing)} (it holds "
            f"{', '.join(init.targets)}); train only those targets or drop --init"
        )
    return None


def check_initial(source: str, config: ModelConfig) -> None:
    """Refuse an ``--init`` model that cannot start a run of ``config``, before any data
    is read (one line; see :func:`load_initial_weights`)."""
    init_config, _ = load_model(source, progress=False)
    problem = config_mismatch(source, init_config, config)
    if problem:
        raise UnmixError(problem)


def load_initial_weights(model: nn.Module, config: ModelConfig, source: str) -> None:
    """Copy the weights and input statistics of ``source`` into ``model`` (in place).

    Args:
        model: the run's model, built for ``config`` (any device).
        config: the run's model configuration.
        source: registry name or model folder.

    Raises:
        UnmixError: an unknown or unreadable model, another configuration, missing
            targets, or weights of other shapes (one line).
    """
    init_config, init_net = load_model(source, progress=False)
    problem = config_mismatch(source, init_config, config)
    if problem:
        raise UnmixError(problem)
    state = init_net.select_targets(config.targets).state_dict()
    ours = model.state_dict()
    if set(state) != set(ours):
        raise UnmixError(
            f"--init {source}: its weights are not those of this run's model "
            f"({len(state)} tensors instead of {len(ours)}); drop --init"
        )
    for key, value in state.items():
        if value.shape != ours[key].shape:
            raise UnmixError(
                f"--init {source}: {key} has shape {tuple(value.shape)}, this run's model "
                f"{tuple(ours[key].shape)}; train with the model's settings or drop --init"
            )
    model.load_state_dict(state, strict=True)
    log.info("weights and input statistics from %s (%s)", source, ", ".join(config.targets))
