"""``unmix train``: train Open-Unmix (or X-UMX) models; flags follow the seed's ``train.py``."""

from __future__ import annotations

import argparse

from ..train import train
from ..train.config import add_arguments, resolve


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
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings, given = resolve(args)
    train(settings, given)
    return 0
