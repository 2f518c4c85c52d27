"""``unmix train --init MODEL`` (``unmix.train.warmstart``): a run starts from a trained
model's weights and input statistics, for all or some of its targets, and a model that
cannot start the run is refused in one line before any song is read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from unmix.cli import main
from unmix.data import build
from unmix.hub.loading import load_model
from unmix.train import data_options
from unmix.train.config import TrainConfig
from unmix.train.flags import add_arguments, resolve
from unmix.train.trainer import Trainer

from ..helpers import TINY_RUN, train_flags

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(root: Path, out: Path, cache: Path, **over: object) -> list[str]:
    settings = {**TINY_RUN, "batch-size": 4, "threads": 1, "epochs": 1, **over}
    return train_flags(root, out, cache, **settings)


def settings_of(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve(parser.parse_args(argv))[0]


def initialised(argv: list[str]) -> Trainer:
    settings = settings_of(argv)
    trainer = Trainer(
        settings, build(settings.data.dataset, data_options(settings)), torch.device("cpu")
    )
    trainer.initialise()
    return trainer


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("unmix: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def trained(musdb_root: Path, decode_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny vocals+bass model, one epoch."""
    out = tmp_path_factory.mktemp("trained") / "m"
    assert main(["train", *tiny(musdb_root, out, decode_cache), "--source", "vocals", "bass"]) == 0
    return out


def test_a_run_starts_from_the_weights_and_statistics_of_the_model(
    trained: Path, musdb_root: Path, decode_cache: Path, tmp_path: Path
) -> None:
    _, model = load_model(trained, progress=False)
    want = model.state_dict()
    fresh = initialised(tiny(musdb_root, tmp_path / "a", decode_cache, source="vocals"))
    started = initialised(
        tiny(musdb_root, tmp_path / "b", decode_cache, source="vocals", init=str(trained))
    )
    got = started.model.state_dict()
    assert got.keys() == {k for k in want if k.startswith("branches.vocals.")}
    for key, value in got.items():
        assert torch.equal(value, want[key]), key
    # without --init the statistics come from the training mixtures, the weights are new
    other = fresh.model.state_dict()
    assert not torch.equal(other["branches.vocals.fc1.weight"], got["branches.vocals.fc1.weight"])
    assert not torch.equal(other["branches.vocals.input_mean"], got["branches.vocals.input_mean"])
    both = initialised(
        [
            *tiny(musdb_root, tmp_path / "c", decode_cache, init=str(trained)),
            "--source",
            "vocals",
            "bass",
        ]
    )
    assert all(torch.equal(v, want[k]) for k, v in both.model.state_dict().items())


def test_a_fine_tuning_run_records_its_start_and_learns_from_it(
    trained: Path, musdb_root: Path, decode_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tuned"
    argv = tiny(musdb_root, out, decode_cache, source="bass", init=str(trained), lr=0.0001)
    assert main(["train", *argv]) == 0
    saved = json.loads((out / "training.json").read_text())
    assert saved["settings"]["run"]["init"] == str(trained)
    _, before = load_model(trained, progress=False)
    _, after = load_model(out, progress=False)
    a, b = (
        before.state_dict()["branches.bass.fc1.weight"],
        after.state_dict()["branches.bass.fc1.weight"],
    )
    assert a.shape == b.shape and 0 < float((a - b).abs().max()) < 0.01


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"hidden-size": 8}, ["hidden_size is 16, this run's is 8", "--hidden-size 16"]),
        ({"source": "drums"}, ["no weights for drums", "vocals, bass"]),
        ({"nfft": 2048, "nhop": 1024}, ["n_fft is 1024, this run's is 2048"]),
    ],
)
def test_a_model_that_cannot_start_the_run_is_one_line_before_any_song_is_read(
    trained: Path,
    musdb_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    over: dict[str, object],
    words: list[str],
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    assert main(["train", *tiny(musdb_root, out, cache, init=str(trained), **over)]) == 1
    message = one_error(capsys)
    assert "--init" in message and all(w in message for w in words), message
    assert not cache.exists() and not out.exists()


def test_registry_names_work_and_unknown_models_are_one_line(
    musdb_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert main(["train", *tiny(musdb_root, tmp_path / "o", cache, init="umx-preview")]) == 1
    assert "--init umx-preview: its n_fft is 4096" in one_error(capsys)
    assert main(["train", *tiny(musdb_root, tmp_path / "o", cache, init="no-such-model")]) == 1
    assert "unknown model 'no-such-model'" in one_error(capsys)
    assert not cache.exists()
