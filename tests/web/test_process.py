"""``unmix serve`` as a real process: SIGKILL leaves job folders that the next start deletes;
SIGTERM stops cleanly and deletes every job folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port
from .webtools import files_in


def start(jobs: Path) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    port = free_port()
    log = jobs.parent / "serve.log"
    with open(log, "ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "unmix", "serve", "--port", str(port), "--jobs-dir",
             str(jobs), "--model", "umx-preview", "-q"],
            env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=stderr,
        )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.TransportError):
            if client.get("/api/info").status_code == 200:
                return proc, client
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("unmix serve did not answer within 120 s")


@pytest.mark.slow
def test_sigkill_leftovers_are_removed_at_start_and_sigterm_cleans_up(
    clip: Path, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs"
    proc, client = start(jobs)
    with open(clip, "rb") as fh:
        job_id = client.post("/api/jobs", files={"audio": ("a.m4a", fh)}).json()["id"]
    while client.get(f"/api/jobs/{job_id}").json()["state"] not in ("done", "failed"):
        time.sleep(0.1)
    client.close()
    proc.kill()
    proc.wait()
    assert job_id in files_in(jobs)  # a killed server cleans nothing

    proc, client = start(jobs)
    try:
        assert files_in(jobs) == []  # ... the next start does
        with open(clip, "rb") as fh:
            assert client.post("/api/jobs", files={"audio": ("a.m4a", fh)}).status_code == 202
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    assert files_in(jobs) == []
