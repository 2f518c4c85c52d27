"""``unmix train``: train separation models; flags follow the seed's ``train.py``."""

from __future__ import annotations

import argparse

from ..train.flags import add_arguments, flags_from_args, resolve
from ..train.launcher import launch
from ..train.run import prepare, train


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on MUSDB18 or your own data",
        description=(
            "Train one Open-Unmix model per target (or one X-UMX model) and write a model "
            "folder that 'unmix separate --model DIR' loads. Settings: defaults, then "
            "--config FILE, then flags."
        ),
    )
    add_arguments(p)
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train with N processes on this machine (torchrun + DDP: one GPU each, or the "
        "CPU); --batch-size is per process; several machines: see docs/distributed.md",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings, given = resolve(args)
    nproc = getattr(args, "nproc", 1)
    if nproc != 1:
        prepare(settings, given)  # settings and checkpoint errors once, before starting ranks
        return launch(nproc, flags_from_args(args))
    train(settings, given)
    return 0
