"""Helpers of the web tests (a test client, waiting for a job, listing job files)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():  # Starlette >= 1.x suggests httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["TestClient", "files_in", "wait"]


def wait(c: TestClient, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll the job until it is done or failed; its final JSON."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = c.get(f"/api/jobs/{job_id}").json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def files_in(folder: Path) -> list[str]:
    """Every path below ``folder`` except the jobs-folder marker, relative, sorted."""
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != ".unmix-serve-jobs"
    )
