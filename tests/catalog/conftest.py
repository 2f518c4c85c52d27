"""Fixtures of the catalog tests: a tiny random-weight model and long-enough inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.config import ModelConfig
from unmix.hub.loading import save_model
from unmix.models.umx import UMX, OpenUnmix

from ..fixtures import EXAMPLE, decode

TINY = ModelConfig(targets=("vocals", "other"), n_fft=512, n_hop=128, hidden_size=16, max_bin=200)


@pytest.fixture(scope="session")
def catalog_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny UMX (2 targets, random weights) saved as a model folder."""
    folder = tmp_path_factory.mktemp("catalog-model")
    torch.manual_seed(0)
    save_model(folder, TINY, UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets}))
    return folder


def write_song(path: Path, repeats: int, shift: int = 0) -> Path:
    """The example clip tiled ``repeats`` times (6.8 s each), rolled by ``shift`` samples,
    as float WAV."""
    audio = np.roll(np.tile(decode(EXAMPLE), (1, repeats)), shift, axis=1)
    sf.write(path, audio.T, 44100, subtype="FLOAT")
    return path
