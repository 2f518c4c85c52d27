"""``unmix evaluate`` hardening (issue 20 items 7, 10, 12; issue 18 item 4): every bad case
ends in one error line and a non-zero exit with no partial score file, or in a correct,
complete result; never a traceback."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from unmix import audio
from unmix.cli import main

SOURCES = ("vocals", "drums", "bass", "other")
RATE = 8000
LINUX = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")


def _dataset(root: Path, names: list[str], rng: np.random.Generator) -> dict[str, dict]:
    """WAV folders ``root/test/<name>/<source>.wav`` (mono, 2.5 s); returns the sources."""
    out = {}
    for name in names:
        sources = {
            s: (0.1 * rng.standard_normal((1, int(2.5 * RATE)))).astype(np.float32) for s in SOURCES
        }
        for source, x in {**sources, "mixture": sum(sources.values())}.items():
            audio.write(root / "test" / name / f"{source}.wav", x, RATE)
        out[name] = sources
    return out


def _estimates(folder: Path, data: dict[str, dict], rng: np.random.Generator) -> None:
    for name, sources in data.items():
        for target, x in sources.items():
            noisy = x + 0.03 * rng.standard_normal(x.shape).astype(np.float32)
            audio.write(folder / name / f"{target}.wav", noisy, RATE)


@pytest.fixture
def scored(tmp_path: Path) -> tuple[Path, Path]:
    """``(dataset root, estimates folder)`` with two tracks and all four estimates each."""
    rng = np.random.default_rng(0)
    data = _dataset(tmp_path / "root", ["Song A", "Song B"], rng)
    _estimates(tmp_path / "est", data, rng)
    return tmp_path / "root", tmp_path / "est"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["evaluate", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line.lower()]


def leftovers(folder: Path) -> list[str]:
    """Temporary or hidden files that a finished run must not leave behind."""
    if not folder.exists():
        return []
    return [str(p) for p in folder.rglob("*") if p.name.startswith(".") or ".part" in p.name]


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--window", "nan"),
        ("--window", "inf"),
        ("--window", "0"),
        ("--window", "-1"),
        ("--hop", "nan"),
        ("--hop", "-inf"),
        ("--hop", "0"),
        ("--regularization", "nan"),
    ],
)
def test_bad_window_hop_regularization_is_one_line(
    scored: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], flag, value
) -> None:
    root, est = scored
    out = tmp_path / "out"
    argv = [str(est), "--root", str(root), "--out-dir", str(out), f"{flag}={value}", "--no-plot"]
    code, _, err = run(argv, capsys)
    assert code == 1 and len(error_lines(err)) == 1
    assert flag in err and value in err
    assert not out.exists()


def test_window_below_one_sample_is_one_line(
    scored: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, est = scored
    argv = [str(est), "--root", str(root), "--out-dir", str(tmp_path / "o"), "--no-plot"]
    code, _, err = run([*argv, "--window", "1e-6"], capsys)
    assert code == 1 and "shorter than one sample at 8000 Hz" in err
    assert not list((tmp_path / "o").rglob("*.json"))


def test_out_dir_that_is_a_file(
    scored: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, est = scored
    blocker = tmp_path / "scores.txt"
    blocker.write_text("keep me")
    for out in (blocker, blocker / "sub"):
        code, _, err = run([str(est), "--root", str(root), "--out-dir", str(out)], capsys)
        assert code == 1 and len(error_lines(err)) == 1
        assert "is a file, not a folder" in err
    assert blocker.read_text() == "keep me"
    argv = ["--model", "umx-preview", "--root", str(root), "--out-dir", str(tmp_path / "o")]
    code, _, err = run([*argv, "--save-estimates", str(blocker)], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "--save-estimates" in err
    assert blocker.read_text() == "keep me" and not (tmp_path / "o").exists()


def _full_disk_at(monkeypatch: pytest.MonkeyPatch, start: bytes) -> None:
    """``os.fsync`` fails with ENOSPC for files whose content begins with ``start``: what
    a full disk does to a buffered write (temporary names say nothing about the file)."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).read_bytes().startswith(start):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@LINUX
def test_full_disk_at_the_first_json(
    scored: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, est = scored
    out = tmp_path / "out"
    _full_disk_at(monkeypatch, b'{\n  "targets"')
    code, _, err = run([str(est), "--root", str(root), "--out-dir", str(out), "--no-plot"], capsys)
    assert code == 1 and len(error_lines(err)) == 1
    assert "No space left on device" in err and "Song A.json" in err
    assert not [p for p in out.rglob("*") if p.is_file()]


@LINUX
def test_full_disk_at_the_summary_writes_no_summary(
    scored: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, est = scored
    out = tmp_path / "out"
    _full_disk_at(monkeypatch, b"# Evaluation")
    code, _, err = run([str(est), "--root", str(root), "--out-dir", str(out), "--no-plot"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "No space left on device" in err
    assert leftovers(out) == []
    # the per-track JSON written before are whole; no summary file is (scores.csv came
    # first and was complete, but the summary files appear together or not at all)
    for name in ("Song A", "Song B"):
        json.loads((out / "test" / f"{name}.json").read_text().replace("NaN", "null"))
    assert sorted(p.name for p in out.iterdir()) == ["test"]


def test_missing_target_estimate_fails_naming_track_and_target(
    scored: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, est = scored
    (est / "Song B" / "bass.wav").unlink()
    out = tmp_path / "out"
    code, _, err = run([str(est), "--root", str(root), "--out-dir", str(out), "--no-plot"], capsys)
    assert code == 1 and len(error_lines(err)) == 1
    assert "Song B: bass" in err and "--allow-missing" in err
    assert not out.exists()
    # asked for: scored without it, and said so on the console and in scores.md
    argv = [str(est), "--root", str(root), "--out-dir", str(out), "--no-plot", "--allow-missing"]
    code, out_text, err = run(argv, capsys)
    assert code == 0 and "Song B: bass" in err
    assert "Missing estimates (scored without them): Song B: bass" in out_text
    assert "Song B: bass" in (out / "scores.md").read_text()
    targets = json.loads((out / "test" / "Song B.json").read_text().replace("NaN", "null"))
    assert [t["name"] for t in targets["targets"]] == ["vocals", "drums", "other"]


def test_missing_requested_target_fails(
    scored: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, est = scored
    (est / "Song A" / "drums.wav").unlink()
    argv = [str(est), "--root", str(root), "--out-dir", str(tmp_path / "o"), "--no-plot"]
    code, _, err = run([*argv, "--targets", "vocals", "drums"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "Song A: drums" in err
    code, _, err = run([*argv, "--targets", "vocals", "bass"], capsys)  # both have them
    assert code == 0


def test_long_track_name_is_scored_under_a_short_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    long_name = "é" * 127 + "a"  # 255 bytes: the folder fits, "<name>.json" does not
    data = _dataset(tmp_path / "root", [long_name, "short"], rng)
    _estimates(tmp_path / "est", data, rng)
    out = tmp_path / "out"
    argv = [str(tmp_path / "est"), "--root", str(tmp_path / "root"), "--out-dir", str(out)]
    code, _, err = run([*argv, "--no-plot"], capsys)
    assert code == 0, err
    files = sorted(p.name for p in (out / "test").iterdir())
    assert len(files) == 2 and "short.json" in files
    short = next(f for f in files if f != "short.json")
    assert short.startswith("é" * 10) and short.endswith(".json") and "~" in short
    assert len(short.encode()) <= 255
    assert long_name in (out / "tracks.csv").read_text()
    assert leftovers(out) == []


def test_no_matplotlib_skips_the_plots_with_a_note(
    scored: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, est = scored
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    out = tmp_path / "out"
    code, _, err = run([str(est), "--root", str(root), "--out-dir", str(out)], capsys)
    assert code == 0
    notes = [line for line in err.splitlines() if "matplotlib" in line]
    assert len(notes) == 1 and "pip install 'unmix[plot]'" in notes[0]
    assert not list(out.glob("*.png"))
    assert (out / "scores.csv").is_file() and (out / "tracks.csv").is_file()
