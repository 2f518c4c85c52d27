"""Re-runs into the same output folder (issue 18, item 1): stems are kept per file when they
were made with the same settings, never mixed with stems made otherwise, and never skipped
in silence."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.engine import OutputOptions, record, separate_files
from unmix.engine.record import RECORD_NAME
from unmix.engine.record import record as record_outputs
from unmix.hub.loading import load_separator, save_model
from unmix.models.umx import UMX, OpenUnmix

TINY = ModelConfig(targets=("vocals", "other"), n_fft=512, n_hop=128, hidden_size=16, max_bin=200)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    out = {}
    for seed, name in enumerate(("tiny", "other-tiny")):
        torch.manual_seed(seed)
        nets = {t: OpenUnmix.from_config(TINY) for t in TINY.targets}
        out[name] = save_model(root / name, TINY, UMX(nets))
    return out


@pytest.fixture()
def song(tmp_path) -> Path:
    t = np.arange(22050) / 44100
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "song.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1).astype(np.float32), 44100, subtype="FLOAT")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["separate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def wavs(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.wav"))


def test_all_targets_after_karaoke_are_refused_not_silently_skipped(capsys, tmp_path, models, song):
    """The issue's case: --targets vocals --residual, then all targets into the same folder.
    Before, nothing was written and the exit code was 0 (with -q: not a word)."""
    out = tmp_path / "out"
    common = [str(song), "--model", str(models["tiny"]), "-o", str(out), "-q"]
    assert run(capsys, *common, "--targets", "vocals", "--residual")[0] == 0
    first = (out / "tiny" / "song" / "vocals.wav").read_bytes()
    code, _, err = run(capsys, *common)
    assert code == 1
    assert "vocals.wav was made with other settings" in err
    assert "outputs ['vocals', 'residual'] -> ['vocals', 'other']" in err
    assert "--force" in err
    assert (out / "tiny" / "song" / "vocals.wav").read_bytes() == first  # nothing mixed in
    assert not (out / "tiny" / "song" / "other.wav").exists()
    assert run(capsys, *common, "--force")[0] == 0
    assert wavs(out) == ["tiny/song/other.wav", "tiny/song/residual.wav", "tiny/song/vocals.wav"]
    settings = json.loads((out / "tiny" / "song" / record.RECORD_NAME).read_text())["files"]
    assert settings["vocals.wav"]["outputs"] == ["vocals", "other"]
    assert settings["residual.wav"]["outputs"] == ["vocals", "residual"]


def test_another_model_goes_to_its_own_folder(capsys, tmp_path, models, song):
    out = tmp_path / "out"
    for name in ("tiny", "other-tiny"):
        code, _, err = run(capsys, str(song), "-n", str(models[name]), "-o", str(out), "-q")
        assert code == 0, err
    assert wavs(out) == [
        "other-tiny/song/other.wav", "other-tiny/song/vocals.wav",
        "tiny/song/other.wav", "tiny/song/vocals.wav",
    ]  # fmt: skip
    a, _ = sf.read(out / "tiny" / "song" / "vocals.wav")
    b, _ = sf.read(out / "other-tiny" / "song" / "vocals.wav")
    assert not np.allclose(a, b)  # really two separations


def test_a_template_without_model_refuses_to_mix_models(capsys, tmp_path, models, song):
    out = tmp_path / "out"
    template = ["--filename", "{track}/{stem}.{ext}"]
    assert run(capsys, str(song), "-n", str(models["tiny"]), "-o", str(out), *template)[0] == 0
    code, _, err = run(
        capsys, str(song), "-n", str(models["other-tiny"]), "-o", str(out), *template
    )
    assert code == 1 and "model 'tiny' -> 'other-tiny'" in err


def test_a_missing_stem_is_written_and_the_others_kept(capsys, tmp_path, models, song):
    out = tmp_path / "out"
    args = [str(song), "-n", str(models["tiny"]), "-o", str(out)]
    assert run(capsys, *args, "-q")[0] == 0
    kept = out / "tiny" / "song" / "vocals.wav"
    os.utime(kept, (1, 1))
    (out / "tiny" / "song" / "other.wav").unlink()
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    assert "keeping vocals.wav (made with the same settings)" in err and "song.wav ->" in stdout
    assert kept.stat().st_mtime == 1 and (out / "tiny" / "song" / "other.wav").is_file()


def test_a_file_nobody_recorded_is_not_taken_as_a_stem(capsys, tmp_path, models, song):
    out = tmp_path / "out"
    (out / "tiny" / "song").mkdir(parents=True)
    (out / "tiny" / "song" / "vocals.wav").write_bytes(b"mine")
    code, _, err = run(capsys, str(song), "-n", str(models["tiny"]), "-o", str(out), "-q")
    assert code == 1 and "nothing records how it was made" in err
    assert (out / "tiny" / "song" / "vocals.wav").read_bytes() == b"mine"


def test_settings_that_change_the_audio_are_recorded(tmp_path, models, song):
    sep = load_separator(models["tiny"], device="cpu")
    options = OutputOptions(out_dir=tmp_path, model="tiny")
    assert len(separate_files(sep, [song], options).reports) == 1
    again = OutputOptions(out_dir=tmp_path, model="tiny", start=0.1)
    result = separate_files(sep, [song], again)
    assert result.failed == 1 and not result.skipped
    assert len(separate_files(sep, [song], options).skipped) == 1


def test_a_changed_input_with_the_same_name_is_not_taken_for_the_old_one(
    capsys, tmp_path, models, song
):
    out = tmp_path / "out"
    args = [str(song), "-n", str(models["tiny"]), "-o", str(out), "-q"]
    assert run(capsys, *args)[0] == 0
    audio, rate = sf.read(song)
    sf.write(song, 0.5 * audio, rate, subtype="FLOAT")  # re-exported, same name
    code, _, err = run(capsys, *args)
    assert code == 1 and "was made with other settings (input " in err
    assert record.fingerprint(song) is not None and record.fingerprint(tmp_path) is None


def test_two_models_with_one_name_are_told_apart(capsys, tmp_path, models, song):
    twin = tmp_path / "elsewhere" / "tiny"  # another model, also called tiny
    shutil.copytree(models["other-tiny"], twin)
    out = tmp_path / "out"
    assert run(capsys, str(song), "-n", str(models["tiny"]), "-o", str(out), "-q")[0] == 0
    code, _, err = run(capsys, str(song), "-n", str(twin), "-o", str(out), "-q")
    assert code == 1 and "model_source" in err


def _record_many(folder: str, prefix: str, count: int) -> None:
    for k in range(count):
        record_outputs([Path(folder) / f"{prefix}{k}.wav"], {"model": prefix})


def test_two_processes_recording_into_one_folder_lose_no_entry(tmp_path):
    # -j in two shells or Ray workers on one output folder: every read-modify-write of the
    # record must see the other process's entries (a lock on the folder)
    ctx = multiprocessing.get_context("fork")
    workers = [
        ctx.Process(target=_record_many, args=(str(tmp_path), prefix, 150)) for prefix in "ab"
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    files = json.loads((tmp_path / RECORD_NAME).read_text())["files"]
    assert len(files) == 300
    assert files["a149.wav"] == {"model": "a"} and files["b0.wav"] == {"model": "b"}
