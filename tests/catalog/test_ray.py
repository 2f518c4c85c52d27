"""``unmix separate --engine ray`` on a local 3-node Ray cluster (every node on 127.0.0.1):
the same stems as the plain CLI, a corrupt input recorded as failed, resume from the ledger,
and faults (an actor killed mid-file, the driver killed, a node killed mid-file) with every
file done exactly once and no half-written stem.

One cluster serves the whole module (Ray starts slowly): a head without CPUs (the driver's
node) and two worker nodes of 2 CPUs each. The node test runs last: it removes a node.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ray.cluster_utils import Cluster

from unmix.catalog.ledger import LEDGER_NAME
from unmix.cli import main
from unmix.fileio import TEMPORARY_NAME

from .conftest import write_song

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

MB = 1 << 20
#: short segments: a file is written over many segments, so a kill lands mid-file
SEGMENTS = ["--segment", "3", "--overlap", "1"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    head = {"num_cpus": 0, "include_dashboard": False, "object_store_memory": 80 * MB}
    c = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(2):
        c.add_node(num_cpus=2, object_store_memory=80 * MB)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three inputs of 6.8, 13.6 and 20.4 s."""
    folder = tmp_path_factory.mktemp("songs")
    for n in (1, 2, 3):
        write_song(folder / f"song{n}.wav", n, shift=1000 * n)
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, songs: Path, catalog_model: Path) -> Path:
    """The plain CLI's stems of ``songs`` (one thread)."""
    out = tmp_path_factory.mktemp("plain")
    argv = ["separate", str(songs), "--model", str(catalog_model), "--out-dir", str(out),
            "--threads", "1", "-q", *SEGMENTS]  # fmt: skip
    assert main(argv) == 0
    return out


def ray_argv(
    inputs: list[Path], out: Path, model: Path, cluster: Cluster, *extra: str
) -> list[str]:
    return ["separate", *map(str, inputs), "--model", str(model), "--out-dir", str(out),
            "--engine", "ray", "--address", cluster.address, "--threads-per-worker", "1",
            *SEGMENTS, *extra]  # fmt: skip


def ledger_lines(out: Path) -> list[dict]:
    lines = (out / LEDGER_NAME).read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["kind"] == "file"]


def stems(out: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): sf.read(p, dtype="float32")[0] for p in out.rglob("*.wav")}


def assert_same_stems(out: Path, reference: Path) -> None:
    ours, theirs = stems(out), stems(reference)
    assert sorted(ours) == sorted(theirs)
    for name, audio in theirs.items():
        assert ours[name].shape == audio.shape
        assert np.abs(ours[name] - audio).max() <= 1e-6, name


def assert_clean(out: Path) -> None:
    """No temporary (half-written) file anywhere under ``out``."""
    assert [p for p in out.rglob("*") if TEMPORARY_NAME.fullmatch(p.name)] == []


def assert_done_once(out: Path, songs: Path) -> list[dict]:
    done = [r for r in ledger_lines(out) if r["status"] == "done"]
    assert Counter(r["input"] for r in done) == {str(p): 1 for p in songs.glob("*.wav")}
    for r in done:  # the ledger matches the files on disk
        assert all((out / o).is_file() for o in r["outputs"])
    return done


def test_same_stems_as_the_plain_cli_and_a_corrupt_input_fails(
    tmp_path: Path, songs: Path, reference: Path, catalog_model: Path, cluster: Cluster, capsys
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    out = tmp_path / "out"
    argv = ray_argv([songs, bad], out, catalog_model, cluster, "--workers", "2")
    assert main(argv) == 1
    capsys.readouterr()
    records = ledger_lines(out)
    assert Counter(r["status"] for r in records) == {"done": 3, "failed": 1}
    (failed,) = (r for r in records if r["status"] == "failed")
    assert failed["input"] == str(bad) and failed["error"].startswith(f"{bad}: ")
    assert_done_once(out, songs)
    assert_same_stems(out, reference)
    assert_clean(out)
    # a re-run skips what is done and retries what failed
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "3 inputs already done" in captured.err and captured.out == ""
    assert Counter(r["status"] for r in ledger_lines(out)) == {"done": 3, "failed": 2}


def kill_when_writing(out: Path, kill: Callable[[int], None]) -> tuple[threading.Event, list]:
    """In a thread: wait for a temporary stem file under ``out`` (a worker mid-file), then
    ``kill`` its writer (the pid in its name) once; ``victims`` gets ``(pid, folder)``."""
    stop, victims = threading.Event(), []

    def watch() -> None:
        while not stop.is_set():
            try:
                found = [p for p in out.rglob(".unmix-*") if TEMPORARY_NAME.fullmatch(p.name)]
            except OSError:
                found = []
            if found:
                pid = int(TEMPORARY_NAME.fullmatch(found[0].name)["pid"])
                victims.append((pid, found[0].parent))
                kill(pid)
                return
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True).start()
    return stop, victims


def _check_retried(out: Path, songs: Path, reference: Path, victims: list) -> None:
    assert victims, "no worker was caught mid-file"
    pid, folder = victims[0]
    done = assert_done_once(out, songs)
    (record,) = (r for r in done if Path(r["input"]).stem == folder.name)
    assert not record["worker"].endswith(f":{pid}")  # finished by another worker
    assert_same_stems(out, reference)
    assert_clean(out)


def test_an_actor_killed_mid_file_is_retried(
    tmp_path: Path, songs: Path, reference: Path, catalog_model: Path, cluster: Cluster
) -> None:
    out = tmp_path / "out"
    stop, victims = kill_when_writing(out, lambda pid: os.kill(pid, signal.SIGKILL))
    try:
        assert main(ray_argv([songs], out, catalog_model, cluster, "--workers", "2", "-q")) == 0
    finally:
        stop.set()
    _check_retried(out, songs, reference, victims)


def test_a_killed_driver_resumes_from_the_ledger(
    tmp_path: Path, songs: Path, reference: Path, catalog_model: Path, cluster: Cluster
) -> None:
    out = tmp_path / "out"
    argv = ray_argv([songs], out, catalog_model, cluster, "--workers", "1", "-q")
    driver = subprocess.Popen([sys.executable, "-m", "unmix", *argv], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    # killed while a worker is mid-file (not on a ledger line: on a quiet machine the
    # remaining short files could all finish between a poll and the kill)
    stop, _ = kill_when_writing(out, lambda pid: driver.kill())
    try:
        driver.wait(timeout=120)
    finally:
        stop.set()
        driver.kill()
        driver.wait()
    first = {r["input"] for r in ledger_lines(out)}
    assert len(first) < 3
    assert main(argv) == 0
    done = assert_done_once(out, songs)
    assert {r["input"] for r in done[len(first) :]} == {str(p) for p in songs.glob("*.wav")} - first
    assert_same_stems(out, reference)
    assert_clean(out)


def _raylet_pid(node: object) -> int:
    return int(node.all_processes["raylet"][0].process.pid)  # type: ignore[attr-defined]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_node_killed_mid_file(
    tmp_path: Path, songs: Path, reference: Path, catalog_model: Path, cluster: Cluster
) -> None:
    out = tmp_path / "out"

    def kill_node(pid: int) -> None:
        parent = _parent(pid)
        (node,) = (n for n in cluster.worker_nodes if _raylet_pid(n) == parent)
        # a dead machine takes all its processes at once: without this kill the worker
        # could finish its file in the moment its raylet takes to go (seen under load)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        cluster.remove_node(node, allow_graceful=False)

    stop, victims = kill_when_writing(out, kill_node)
    try:
        assert main(ray_argv([songs], out, catalog_model, cluster, "--workers", "2", "-q")) == 0
    finally:
        stop.set()
    assert len(cluster.worker_nodes) == 1
    _check_retried(out, songs, reference, victims)
    shutil.rmtree(out)
