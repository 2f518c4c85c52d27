"""The run sequence of ``unmix train`` (``unmix.train.run``) as a careless user and a
full disk meet it: settings refused before anything is read or written, a trained run
never replaced without ``--force``, a full disk reported in one line with the checkpoint
intact, and a kill between the checkpoint and the weights still resumable."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unmix.cli import main
from unmix.train import checkpoint

from ..helpers import TINY_RUN, train_flags


def tiny(root: Path, out: Path, cache: Path, **over: object) -> list[str]:
    return ["train", *train_flags(root, out, cache, **{**TINY_RUN, "threads": 1, **over})]


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The run's single error line (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("unmix: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_hop_as_long_as_the_fft_is_refused_before_anything_is_read_or_written(
    musdb_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert main(tiny(musdb_root, out, cache, nfft=512, nhop=512)) == 1
    assert "n_hop" in one_error(capsys)
    assert not out.exists() and not cache.exists()  # no song was decoded into the cache


def test_a_trained_run_is_kept_unless_resume_or_force(
    musdb_root: Path, decode_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    assert main(tiny(musdb_root, out, decode_cache, epochs=1)) == 0
    before = files_of(out)
    assert "checkpoint/vocals.pt" in before and "vocals.safetensors" in before
    capsys.readouterr()
    assert main(tiny(musdb_root, out, decode_cache, epochs=1)) == 1
    message = one_error(capsys)
    assert "--resume" in message and "--force" in message and "vocals.safetensors" in message
    assert files_of(out) == before  # nothing was touched
    assert main([*tiny(musdb_root, out, decode_cache, epochs=1), "--resume", "--force"]) == 1
    assert "give one of them" in one_error(capsys)
    # --force starts over: a run with another seed replaces the weights and the checkpoint
    assert main([*tiny(musdb_root, out, decode_cache, epochs=1, seed=7), "--force"]) == 0
    assert checkpoint.load(out / "checkpoint" / "vocals.pt")["settings"]["optim"]["seed"] == 7
    assert files_of(out)["vocals.safetensors"] != before["vocals.safetensors"]
    # another target with other model settings is refused before any song is decoded
    fresh = tmp_path / "fresh-cache"
    assert main(tiny(musdb_root, out, fresh, source="bass", **{"hidden-size": 8})) == 1
    assert "other settings" in one_error(capsys) and not fresh.exists()


def test_a_full_disk_is_one_line_and_the_checkpoint_stays_intact(
    musdb_root: Path,
    decode_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "m"
    assert main(tiny(musdb_root, out, decode_cache, epochs=1)) == 0
    ckpt = out / "checkpoint" / "vocals.pt"
    saved = ckpt.read_bytes()
    capsys.readouterr()

    def full_disk(obj: object, fh: object) -> None:
        fh.write(b"x" * 1000)  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    assert main([*tiny(musdb_root, out, decode_cache, epochs=2), "--resume"]) == 1
    message = one_error(capsys)
    assert "No space left on device" in message and "disk mounted at /" in message
    assert str(out) in message and "--resume" in message
    assert ckpt.read_bytes() == saved  # the checkpoint of epoch 1, whole
    assert checkpoint.load(ckpt)["epoch"] == 1
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["vocals.pt"]  # no temporaries


def test_a_full_disk_while_filling_the_decoded_audio_cache_is_one_line(
    musdb_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from unmix.data import cache

    def full_disk(fh: object, array: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.np, "save", full_disk)
    folder = tmp_path / "decoded"
    assert main(tiny(musdb_root, tmp_path / "m", folder, epochs=1)) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("unmix: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "No space left on device" in lines[0] and str(folder) in lines[0]
    assert "--no-cache" in lines[0] and "skipping" not in err  # not "no usable track"
    assert [p for p in folder.rglob("*") if p.is_file()] == []


def test_a_kill_between_the_checkpoint_and_the_weights_resumes(
    musdb_root: Path,
    decode_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from unmix.train import trainer

    out = tmp_path / "m"

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies right after the checkpoint is written

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "save_model", killed)
        assert main(tiny(musdb_root, out, decode_cache, epochs=1)) == 130
    state = checkpoint.load(out / "checkpoint" / "vocals.pt")
    assert state["epoch"] == 1 and not (out / "vocals.safetensors").exists()
    # --resume continues from the checkpoint and writes the best weights it holds
    assert main([*tiny(musdb_root, out, decode_cache, epochs=1), "--resume"]) == 0
    weights = load_file(str(out / "vocals.safetensors"))
    for key, value in state["units"]["vocals"]["model"].items():
        assert torch.equal(weights[key], value), key
    assert (out / "config.json").is_file() and (out / "training.json").is_file()


def test_a_checkpoint_with_the_flat_settings_of_earlier_runs_resumes(
    musdb_root: Path, decode_cache: Path, tmp_path: Path
) -> None:
    """Checkpoints and ``training.json`` used to hold the settings as one flat mapping with
    the flag spellings (``nfft``, ``nhop``); ``--resume`` still reads them."""
    out = tmp_path / "m"
    assert main(tiny(musdb_root, out, decode_cache, epochs=1)) == 0
    path = out / "checkpoint" / "vocals.pt"
    state = checkpoint.load(path)
    flat = {k: v for section in state["settings"].values() for k, v in section.items()}
    flat["nfft"], flat["nhop"] = flat.pop("n_fft"), flat.pop("n_hop")
    del flat["force"]
    assert flat["nfft"] == 1024 and isinstance(flat["source"], list)
    checkpoint.save(path, {**state, "settings": flat})
    assert main([*tiny(musdb_root, out, decode_cache, epochs=2), "--resume"]) == 0
    resumed = checkpoint.load(path)
    assert resumed["epoch"] == 2 and resumed["settings"]["model"]["n_fft"] == 1024
