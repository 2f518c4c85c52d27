"""What a run writes beside the model: histories (JSON + PNG), ``training.json``,
and the merged ``config.json`` of every target trained into the folder."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import ModelConfig, canonical_order
from ..errors import UnmixError
from ..fileio import atomic_path, atomic_write_text
from ..hub.folders import CONFIG_FILE
from ..models.architectures import get_architecture

log = logging.getLogger(__name__)


def write_json(path: Path, data: Any) -> None:
    """Indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def versions() -> dict[str, str]:
    """Versions of the software that trained the model, and the git commit if known."""
    out = {
        "unmix": __version__,
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        out["git_commit"] = commit
    return out


def _same_except_targets(a: ModelConfig, b: ModelConfig) -> bool:
    return all(
        getattr(a, f.name) == getattr(b, f.name)
        for f in fields(ModelConfig)
        if f.name not in ("targets", "extra")
    )


def merged_config(folder: Path, config: ModelConfig) -> ModelConfig:
    """The config to write into ``folder``: ``config`` plus the targets of the model
    already there (canonical order), as long as those targets live in weight files that
    this run does not write (per-target files); otherwise ``config`` alone, whose weight
    files replace the folder's model.

    Raises:
        UnmixError: the folder holds a model with other settings.
    """
    path = folder / CONFIG_FILE
    if not path.is_file():
        return config
    existing = ModelConfig.load(path)
    if not _same_except_targets(existing, config):
        raise UnmixError(
            f"{folder} already holds a model with other settings ({path}); train into a new "
            "--output folder or delete it"
        )
    layout = get_architecture(config.arch).weight_files
    ours = set(layout(config))
    kept = [t for t in existing.targets if t not in config.targets]
    if any(set(layout(config.with_(targets=(t,)))) & ours for t in kept):
        return config
    return config.with_(targets=canonical_order([*existing.targets, *config.targets]))


def plot_history(path: Path, name: str, history: Mapping[str, list[float]]) -> None:
    """Learning curve (train and validation loss per epoch) as a PNG, atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is an optional extra
        log.info("matplotlib not installed; no learning-curve PNG")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="train")
    ax.plot(epochs, history["valid_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (magnitude)")
    ax.set_yscale("log")
    ax.set_title(name)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".part.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
