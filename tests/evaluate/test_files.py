"""unmix.evaluate.files: file names that fit, all-or-nothing summary files, and which write
errors stop a run (a full disk) or only fail a track (a name too long)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from unmix import evaluate as ev
from unmix.evaluate import files as files_mod
from unmix.evaluate import run as run_mod
from unmix.tracks import Track


@pytest.mark.parametrize("stem", ["a" * 255, "é" * 127 + "a", "ü" * 127, "x" * 250])
def test_fit_file_name_fits(tmp_path: Path, stem: str) -> None:
    name = ev.fit_file_name(stem, ".json")
    assert len(name.encode()) <= 255 and name.endswith(".json")
    if len((stem + ".json").encode()) <= 255:
        assert name == stem + ".json"  # museval's name whenever it fits
    else:
        assert "~" in name and stem.startswith(name.rsplit("~", 1)[0])
    # the real atomic write (its temporary name included) works on this file system
    path = files_mod.write_files({tmp_path / name: "{}"})[0]
    assert path.read_text() == "{}" and os.listdir(tmp_path) == [name]


def test_fit_file_name_keeps_long_names_apart() -> None:
    a, b = "a" * 300 + "1", "a" * 300 + "2"
    assert ev.fit_file_name(a, ".json") != ev.fit_file_name(b, ".json")
    assert ev.fit_file_name(a, ".json") == ev.fit_file_name(a, ".json")


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")
def test_write_files_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "b.csv").write_text("old")
    real = os.fsync

    def fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).read_bytes() == b"new-c.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    files = {tmp_path / n: f"new-{n}" for n in ("a.csv", "b.csv", "c.md")}
    with pytest.raises(ev.ScoreWriteError, match=r"c\.md: No space left on device") as info:
        files_mod.write_files(files)
    assert not info.value.name_too_long
    assert sorted(os.listdir(tmp_path)) == ["b.csv"] and (tmp_path / "b.csv").read_text() == "old"


def _fake_tracks(names: list[str]) -> tuple[list[Track], ev.EstimateSource]:
    rng = np.random.default_rng(0)
    refs = {s: rng.standard_normal((1, 3000)) for s in ("vocals", "drums")}

    class FakeTrack(Track):
        def load(self, names=None, start=0.0, duration=None):  # type: ignore[no-untyped-def]
            return dict(refs), 1000

    tracks = [FakeTrack(n, "test", files={"vocals": Path(), "drums": Path()}) for n in names]

    def estimates(track: Track, sources: Mapping[str, np.ndarray], rate: int) -> dict:
        return {k: v + 0.1 for k, v in sources.items()}

    return list(tracks), estimates


def test_name_too_long_fails_one_track_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracks, estimates = _fake_tracks(["bad", "good"])
    real = files_mod.write_track_json

    def write(out_dir: Path, scores: ev.TrackScores) -> Path:
        if scores.name == "bad":
            path = Path(out_dir) / "bad.json"
            err = OSError(errno.ENAMETOOLONG, "File name too long")
            raise files_mod.write_error(path, err) from err
        return real(out_dir, scores)

    monkeypatch.setattr(run_mod, "write_track_json", write)
    done, failed = ev.evaluate_tracks(tracks, estimates, tmp_path, report=lambda _: None)
    assert [s.name for s in done] == ["good"]
    assert len(failed) == 1 and failed[0].startswith("bad: cannot write")
    assert (tmp_path / "test" / "good.json").is_file()


def test_full_disk_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracks, estimates = _fake_tracks(["one", "two"])

    def write(out_dir: Path, scores: ev.TrackScores) -> Path:
        err = OSError(errno.ENOSPC, "No space left on device")
        raise files_mod.write_error(Path(out_dir) / "one.json", err) from err

    monkeypatch.setattr(run_mod, "write_track_json", write)
    with pytest.raises(ev.ScoreWriteError, match="No space left on device"):
        ev.evaluate_tracks(tracks, estimates, tmp_path, report=lambda _: None)


def test_eval_settings_refuse_non_finite_values() -> None:
    for kwargs in ({"window": float("nan")}, {"hop": float("inf")}, {"window": 0.0}):
        with pytest.raises(ev.UnmixError, match="finite number of seconds > 0"):
            ev.EvalSettings(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ev.UnmixError, match="regularization"):
        ev.EvalSettings(regularization=float("nan"))
    with pytest.raises(ev.UnmixError, match="mode must be one of"):
        ev.EvalSettings(mode="pesq")


def test_missing_target_in_settings_fails_the_track() -> None:
    tracks, _ = _fake_tracks(["t"])

    def only_vocals(track: Track, sources: Mapping[str, np.ndarray], rate: int) -> dict:
        return {"vocals": sources["vocals"]}

    settings = ev.EvalSettings(targets=("vocals", "drums"))
    done, failed = ev.evaluate_tracks(tracks, only_vocals, None, settings, lambda _: None)
    assert not done and "no estimate for drums" in failed[0]
    allow = ev.EvalSettings(targets=("vocals", "drums"), allow_missing=True)
    done, failed = ev.evaluate_tracks(tracks, only_vocals, None, allow, lambda _: None)
    assert not failed and list(done[0].scores) == ["vocals"]
