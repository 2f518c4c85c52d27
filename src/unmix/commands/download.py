"""``unmix download``: fetch models and the MUSDB18 previews into the cache now, for
machines that go offline later."""

from __future__ import annotations

import argparse
import logging

from ..errors import UnmixError
from ..hub.datasets import DATASETS, fetch_dataset
from ..hub.download import cache_dir, fetch
from ..hub.registry import BUNDLES, ModelBundle, get_bundle

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    names = [*BUNDLES, *DATASETS]
    p = sub.add_parser(
        "download",
        help="fetch models or the MUSDB18 previews into the cache (for offline use)",
        description="Download registered models (verified by SHA-256) and the MUSDB18 "
        "7-second previews into the cache ($UNMIX_HOME, else ~/.cache/unmix), so that later "
        "runs need no network.",
        epilog=f"names: {', '.join(names)}",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="model or dataset names")
    p.set_defaults(run=run)


def _check_names(names: list[str]) -> None:
    unknown = []
    for name in names:
        if name in DATASETS:
            continue
        try:
            get_bundle(name)
        except KeyError:
            unknown.append(name)
    if unknown:
        raise UnmixError(
            f"unknown name(s) {', '.join(map(repr, unknown))}: choose from "
            f"{', '.join([*BUNDLES, *DATASETS])}"
        )


def _download_model(bundle: ModelBundle, progress: bool) -> str:
    if bundle.notice:
        log.warning("%s", bundle.notice)
    if bundle.packaged:
        return f"{bundle.name}: installed with unmix, nothing to download"
    folder = cache_dir() / bundle.name
    for wf in bundle.files:
        fetch(wf.url, folder / wf.filename, wf.sha256, progress)
    return f"{bundle.name}: {len(bundle.files)} file(s) in {folder}"


def run(args: argparse.Namespace) -> int:
    _check_names(args.names)
    progress = not getattr(args, "quiet", False)
    for name in args.names:
        if name in DATASETS:
            print(f"{name}: {fetch_dataset(name, progress)}")
        else:
            print(_download_model(get_bundle(name), progress))
    return 0
