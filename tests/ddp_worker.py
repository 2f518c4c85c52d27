"""A training worker for ``tests/train/test_ddp.py``: run as a script
(``python tests/ddp_worker.py <unmix train flags>``, one per rank, e.g. under torchrun), it
is ``unmix train`` that also records, in ``$UNMIX_TEST_RECORD``, what its rank trained on.

It imports only ``unmix`` and the standard library (a script has no package for relative
imports from ``tests/``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from unmix.cli import main
from unmix.train.ddp import DistributedTrainer
from unmix.train.launcher import Environment


def _worker(argv: list[str]) -> int:
    """``unmix train`` on one rank that also saves, in ``$UNMIX_TEST_RECORD``, its pid (at
    the first step) and, at the end, the batches it trained on and its weights."""
    record = Path(os.environ["UNMIX_TEST_RECORD"])
    rank = Environment.detect().rank
    mixes: list[torch.Tensor] = []
    initial: dict[str, torch.Tensor] = {}
    step, fit = DistributedTrainer.step, DistributedTrainer.fit

    def recording_step(self: DistributedTrainer, unit: Any, mix: Any, targets: Any) -> float:
        if not mixes:
            initial.update({k: v.clone() for k, v in unit.model.state_dict().items()})
            (record / f"pid-{rank}.part").write_text(str(os.getpid()))
            os.replace(record / f"pid-{rank}.part", record / f"pid-{rank}")
        mixes.append(mix.clone())
        return step(self, unit, mix, targets)

    def saving_fit(self: DistributedTrainer) -> None:
        fit(self)
        weights = {n: u.model.state_dict() for n, u in self.units.items()}
        state = {"mixes": mixes, "weights": weights, "initial": initial}
        torch.save(state, record / f"rank-{rank}.pt")

    DistributedTrainer.step = recording_step  # type: ignore[method-assign,assignment]
    DistributedTrainer.fit = saving_fit  # type: ignore[method-assign,assignment]
    return main(["train", *argv])


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
