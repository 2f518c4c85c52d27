"""``unmix train``: train separation models; flags follow the seed's ``train.py``."""

from __future__ import annotations

import argparse

from ..hub.datasets import PREVIEW, cached_dataset, fetch_dataset
from ..train.config import TrainConfig
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
            "--config FILE, then flags. Without --root, the MUSDB18 7-s previews (147 MB, "
            "non-commercial terms) are downloaded once into the cache and used, as the seed "
            "does: fine for trying things, far too little to train a useful model."
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


def _use_previews(settings: TrainConfig) -> bool:
    """As the seed: without --root, train on the MUSDB18 7-s previews (fetched once into the
    cache); only for the musdb layout, and --resume never downloads (a run on the previews
    finds them in the cache)."""
    data = settings.data
    if data.root is not None or data.dataset != "musdb" or data.is_wav:
        return False
    return not settings.run.resume or cached_dataset(PREVIEW) is not None


def run(args: argparse.Namespace) -> int:
    settings, given = resolve(args)
    if _use_previews(settings):
        args.root = str(fetch_dataset(PREVIEW, progress=not settings.run.quiet))
        settings, given = resolve(args)
    nproc = getattr(args, "nproc", 1)
    if nproc != 1:
        prepare(settings, given)  # settings and checkpoint errors once, before starting ranks
        return launch(nproc, flags_from_args(args))
    train(settings, given)
    return 0
