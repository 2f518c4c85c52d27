"""Load on a real server on 127.0.0.1: 10 uploads at once, each accepted or refused with a
clear status; every accepted job finishes; nothing is left after expiry."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from unmix.web.security import Guard

from .conftest import running
from .webtools import files_in

UPLOADS = 10


@pytest.mark.slow
def test_ten_uploads_at_once(make_app: Any, clip: Path, tmp_path: Path) -> None:
    app = make_app(
        guard=Guard.for_bind("127.0.0.1", None), max_pending=6, keep_seconds=1.0, sweep_every=0.2
    )
    data = clip.read_bytes()
    with running(app) as url, httpx.Client(base_url=url, timeout=120) as client:

        def upload(i: int) -> httpx.Response:
            return client.post("/api/jobs", files={"audio": (f"song{i}.m4a", data)})

        with ThreadPoolExecutor(UPLOADS) as pool:
            responses = list(pool.map(upload, range(UPLOADS)))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) <= {202, 503}, statuses
        refused = [r.json() for r in responses if r.status_code == 503]
        assert all(r["error"].startswith("the server's queue is full") for r in refused)
        accepted = [r.json()["id"] for r in responses if r.status_code == 202]
        assert len(accepted) >= 6  # at least the queue's room
        finished: dict[str, str] = {}
        deadline = time.monotonic() + 300
        while len(finished) < len(accepted) and time.monotonic() < deadline:
            for job_id in accepted:
                body = client.get(f"/api/jobs/{job_id}")
                if body.status_code == 404:  # done and already expired
                    finished.setdefault(job_id, "expired")
                elif body.json()["state"] in ("done", "failed"):
                    finished.setdefault(job_id, body.json()["state"])
            time.sleep(0.2)
        assert set(finished.values()) <= {"done", "expired"}
        assert len(finished) == len(accepted)
        while files_in(tmp_path / "jobs") and time.monotonic() < deadline:
            time.sleep(0.2)  # expiry (1 s) then the next sweep
        assert files_in(tmp_path / "jobs") == []
        assert all(client.get(f"/api/jobs/{j}").status_code == 404 for j in accepted)
