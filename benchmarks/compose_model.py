"""Compose a UMX model folder from a base model and fine-tuned networks, with checkpoint
averaging, stored as float16 safetensors like the models in ``src/unmix/zoo``.

    python benchmarks/compose_model.py OUT --base src/unmix/zoo/umx-preview \\
        --unit other=runs/o1/snap/06.pt,runs/o1/snap/07.pt,runs/o1/snap/08.pt

``--unit TARGET=FILE[,FILE...]``: the network of TARGET is the average of the weights in
the files (``unmix train`` checkpoints, ``checkpoint/<names>.pt``, or ``<target>.safetensors``
files); floating-point tensors (batch-norm statistics included) are averaged, integer ones
(``num_batches_tracked``) taken from the last file. Targets without ``--unit`` keep the
base model's weights. ``config.json`` is the base's.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from unmix.train import checkpoint

META = {"dtype": "float16 (loaded into float32)", "format": "pt"}


def read_unit(path: Path, target: str) -> dict[str, torch.Tensor]:
    """The state dict of ``target``'s network in a checkpoint or a safetensors file."""
    if path.suffix == ".safetensors":
        return {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}
    units = checkpoint.load(path)["units"]
    return {k: v.float() if v.is_floating_point() else v for k, v in units[target]["model"].items()}


def average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Mean of floating-point tensors; the last file's integer tensors."""
    out: dict[str, torch.Tensor] = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = torch.stack([s[key] for s in states]).mean(0)
        else:
            out[key] = last
    return out


def half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors as float16, contiguous."""
    return {
        k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sorted(state.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--base", type=Path, required=True, help="base model folder")
    parser.add_argument("--unit", action="append", default=[], help="TARGET=FILE[,FILE...]")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.base / "config.json", args.out / "config.json")
    units = dict(u.split("=", 1) for u in args.unit)
    for weights in sorted(args.base.glob("*.safetensors")):
        target = weights.stem
        if target in units:
            files = [Path(f) for f in units.pop(target).split(",")]
            state = average([read_unit(f, target) for f in files])
            print(f"{target}: average of {len(files)}: {', '.join(map(str, files))}")
        else:
            state = read_unit(weights, target)
            print(f"{target}: {weights}")
        save_file(half(state), str(args.out / f"{target}.safetensors"), metadata=META)
    if units:
        raise SystemExit(f"no such target in the base model: {sorted(units)}")


if __name__ == "__main__":
    main()
