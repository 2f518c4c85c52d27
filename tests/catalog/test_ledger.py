"""The ledger, the run plan (skip, redo, refuse, manifests, order) and the worker, without Ray."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unmix.catalog.cli import output_settings, settings_from_args, stop_if_disk_full
from unmix.catalog.ledger import (
    LEDGER_NAME,
    FileRecord,
    LedgerWriter,
    read_ledger,
)
from unmix.catalog.plan import check_settings, expand_inputs, output_folder, plan_run
from unmix.catalog.worker import SeparateWorker
from unmix.cli import build_parser, main
from unmix.engine import OutputOptions, plan_batch
from unmix.errors import UnmixError

from .conftest import write_song

pytestmark = pytest.mark.usefixtures("one_thread")


def settings(model: Path | str = "umx-preview", *extra: str) -> dict:
    """The settings ``unmix separate x.wav --model MODEL EXTRA... --engine ray`` records."""
    args = build_parser().parse_args(["separate", "x.wav", "--model", str(model), *extra])
    options = OutputOptions(Path(), args.format, args.bits, False, args.start, args.duration)
    return {**settings_from_args(args), "output": output_settings(options)}


def test_settings_survive_json() -> None:
    s = settings("umx-preview", "--targets", "vocals", "--niter", "0", "--duration", "3")
    assert json.loads(json.dumps(s)) == s
    assert s["targets"] == ["vocals"] and s["niter"] == 0 and s["duration"] == 3.0


def test_latest_line_wins_and_a_cut_last_line_is_dropped(tmp_path: Path) -> None:
    s = settings()
    writer = LedgerWriter(tmp_path / LEDGER_NAME)
    writer.append({"kind": "run", "settings": s})
    writer.append(FileRecord("/a.wav", "failed", s, error="boom").to_json())
    writer.append(FileRecord("/a.wav", "done", s, outputs=["a/vocals.wav"]).to_json())
    writer.close()
    with open(tmp_path / LEDGER_NAME, "ab") as fh:
        fh.write(b'{"kind":"file","input":"/b.wav","sta')  # a driver killed mid-line
    state = read_ledger(tmp_path)
    assert state.settings == s and list(state.latest) == ["/a.wav"]
    assert state.latest["/a.wav"].status == "done"
    writer = LedgerWriter(tmp_path / LEDGER_NAME)  # cuts the partial line before appending
    writer.append(FileRecord("/b.wav", "done", s).to_json())
    writer.close()
    lines = (tmp_path / LEDGER_NAME).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)
    assert read_ledger(tmp_path).latest["/b.wav"].status == "done"


def test_a_broken_middle_line_is_an_error(tmp_path: Path) -> None:
    (tmp_path / LEDGER_NAME).write_text('{"kind":"run","settings":{}}\nnot json\n{}\n')
    with pytest.raises(UnmixError, match=r"line 2 is not a ledger line"):
        read_ledger(tmp_path)


def test_changed_settings_are_refused_unless_forced(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path / LEDGER_NAME)
    writer.append({"kind": "run", "settings": settings()})
    writer.close()
    state = read_ledger(tmp_path)
    check_settings(state, settings(), force=False)
    with pytest.raises(UnmixError, match=r"other settings \(niter: 1 → 0\).*--force"):
        check_settings(state, settings("umx-preview", "--niter", "0"), force=False)
    check_settings(state, settings("umx-preview", "--niter", "0"), force=True)


def test_cli_refuses_changed_settings(tmp_path: Path, clip: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    writer = LedgerWriter(out / LEDGER_NAME)
    writer.append({"kind": "run", "settings": settings("umx-preview", "--format", "flac")})
    writer.close()
    argv = [
        "separate",
        str(clip),
        "--model",
        "umx-preview",
        "--out-dir",
        str(out),
        "--engine",
        "ray",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "other settings (format: 'flac' → 'wav', output: " in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [LEDGER_NAME]


def _done(path: Path, out: Path, s: dict) -> FileRecord:
    st = path.stat()
    return FileRecord(str(path), "done", s, size=st.st_size, mtime_ns=st.st_mtime_ns,
                      outputs=[f"{path.stem}/vocals.wav"])  # fmt: skip


def test_plan_skips_done_redoes_changed_and_orders_longest_first(tmp_path: Path) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    short, long_, changed = (write_song(songs / n, r) for n, r in
                             [("short.wav", 1), ("long.wav", 2), ("changed.wav", 1)])  # fmt: skip
    out = tmp_path / "out"
    s = settings()
    out.mkdir()
    writer = LedgerWriter(out / LEDGER_NAME)
    writer.append({"kind": "run", "settings": s})
    for path in (short, changed):
        (out / path.stem).mkdir()
        (out / path.stem / "vocals.wav").write_bytes(b"x")  # what the record says
        writer.append(_done(path, out, s).to_json())
    writer.close()
    os.utime(changed, ns=(1, 1))  # a new version of the input
    plan = plan_run([songs], OutputOptions(out), read_ledger(out), s)
    assert [j.path for j in plan.done] == [short]
    assert [t.input for t in plan.tasks] == [long_, changed]  # longest first
    (out / "short" / "vocals.wav").unlink()  # a recorded output is gone: redo
    plan = plan_run([songs], OutputOptions(out), read_ledger(out), s)
    assert not plan.done and len(plan.tasks) == 3


def test_unrecorded_outputs_are_refused_without_a_ledger(tmp_path: Path) -> None:
    song = write_song(tmp_path / "song.wav", 1)
    (job,) = plan_batch([song], OutputOptions(tmp_path / "out")).jobs
    output_folder(job.destination).mkdir(parents=True)
    (output_folder(job.destination) / "vocals.wav").write_bytes(b"made by someone else")
    with pytest.raises(UnmixError, match=r"does not record it.*--force"):
        plan_run([song], OutputOptions(tmp_path / "out"), read_ledger(tmp_path / "out"), settings())
    plan = plan_run([song], OutputOptions(tmp_path / "out", force=True),
                    read_ledger(tmp_path / "out"), settings())  # fmt: skip
    assert [t.input for t in plan.tasks] == [song]


def test_manifests_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "list").mkdir()
    manifest = tmp_path / "list" / "songs.txt"
    manifest.write_text("# my catalogue\n\n../a.mp3\n/abs/b.flac\n")
    assert expand_inputs([manifest, tmp_path / "c.wav"]) == [
        tmp_path / "list" / "../a.mp3",
        Path("/abs/b.flac"),
        tmp_path / "c.wav",
    ]
    with pytest.raises(UnmixError, match="cannot read standard input"):
        expand_inputs([Path("-")])


def test_worker_records_done_and_failed(tmp_path: Path, catalog_model: Path, clip: Path) -> None:
    s = settings(catalog_model)
    out_dir = tmp_path / "out"
    worker = SeparateWorker(s, OutputOptions(out_dir), "cpu", 1)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    out = worker({"input": [str(clip), str(bad)]})
    good, failed = (FileRecord.from_json(json.loads(r)) for r in out["record"])
    assert good.status == "done" and sorted(good.outputs) == sorted(
        str(p.relative_to(out_dir)) for p in out_dir.rglob("*.wav")
    )
    assert len(good.outputs) == 2
    assert good.sha256 is not None and len(good.sha256) == 64 and good.seconds > 6.5
    assert good.finished > 1.7e9 and good.worker.endswith(f":{os.getpid()}")
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.startswith(str(bad)) and "\n" not in failed.error
    assert not [p for p in out_dir.rglob("*") if "bad" in str(p)]


def test_a_full_disk_stops_the_run() -> None:
    full = FileRecord("/a.wav", "failed", {}, error=f"/a.wav: {os.strerror(errno.ENOSPC)}: /o/x")
    with pytest.raises(UnmixError, match=r"No space left on device.*free space.*resumes"):
        stop_if_disk_full(full)
    stop_if_disk_full(FileRecord("/b.wav", "failed", {}, error="/b.wav: not a readable audio file"))
    stop_if_disk_full(FileRecord("/c.wav", "done", {}))


def test_ray_is_imported_only_with_engine_ray(
    tmp_path: Path, catalog_model: Path, clip: Path
) -> None:
    code = (
        "import sys\nfrom unmix.cli import main\n"
        "try:\n    main(['separate', '--help'])\nexcept SystemExit:\n    pass\n"
        f"assert main(['separate', {str(clip)!r}, '--model', {str(catalog_model)!r}, '-q', "
        f"'--out-dir', {str(tmp_path)!r}]) == 0\n"
        "assert 'ray' not in sys.modules\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.rglob("*.wav"))) == 2
