"""``unmix convert SRC DST``: any loadable model → an unmix model folder (safetensors)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ..config import ModelConfig
from ..errors import UnmixError
from ..hub.folders import CONFIG_FILE, read_folder
from ..hub.loading import load_model, save_model
from ..models.architectures import get_architecture
from ..models.contract import SeparationModel


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "convert",
        help="convert NNabla .h5/.zip or .pth weights to an unmix model folder",
        description=(
            "Convert a model (NNabla folder of <target>.h5, x-umx.h5, an NNabla .zip, a folder "
            "of .pth files or a registry name) into an unmix model folder: config.json plus "
            "<target>.safetensors (xumx.safetensors for X-UMX)."
        ),
    )
    p.add_argument("source", help="registry name, model folder, NNabla .h5 file or .zip")
    p.add_argument("dest", type=Path, help="model folder to write")
    p.add_argument(
        "--force", action="store_true", help="replace DEST if it is an existing model folder"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dest: Path = args.dest
    _check_dest(Path(args.source), dest, args.force)
    config, model = load_model(args.source)
    write_folder(dest, config, model)
    kind = get_architecture(config.arch).label
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.source} -> {dest}/ ({kind}; targets {', '.join(config.targets)}; "
        f"{config.sample_rate} Hz; {params:,} parameters)"
    )
    return 0


def _check_dest(source: Path, dest: Path, force: bool) -> None:
    """Refuse to overwrite anything but an earlier model folder, or the source itself."""
    if dest.resolve() == Path.cwd().resolve() or dest.resolve() in Path.cwd().resolve().parents:
        raise UnmixError(
            f"{dest} is the current folder or holds it; refusing to replace it, choose a new "
            "output folder"
        )
    if source.exists() and (
        source.resolve() == dest.resolve() or dest.resolve() in source.resolve().parents
    ):
        raise UnmixError(f"{dest} holds the source model; choose another output folder")
    if not dest.exists():
        return
    if not dest.is_dir():
        raise UnmixError(f"{dest} exists and is not a folder; choose another output folder")
    if not any(dest.iterdir()):
        return
    if not force:
        raise UnmixError(f"{dest} already exists and is not empty; use --force to replace it")
    if not (dest / CONFIG_FILE).is_file():
        raise UnmixError(
            f"{dest} is not a model folder (no {CONFIG_FILE}); refusing to replace it, "
            "choose another output folder"
        )


def write_folder(dest: Path, config: ModelConfig, model: SeparationModel) -> None:
    """Write and re-load the folder beside ``dest``, then swap it into place.

    A failed or interrupted conversion leaves ``dest`` as it was.

    Raises:
        UnmixError: the folder cannot be written (one line; nothing is left behind).
    """
    dest = dest.absolute()
    try:
        _swap_in(dest, config, model)
    except OSError as exc:
        raise UnmixError(f"cannot write {dest}: {exc.strerror or exc}") from exc


def _swap_in(dest: Path, config: ModelConfig, model: SeparationModel) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    old = tmp.with_suffix(".old")
    try:
        save_model(tmp, config, model)
        read_folder(tmp)  # the written folder must load strictly
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not dest.exists():
            os.replace(old, dest)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
