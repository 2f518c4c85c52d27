"""The HTTP API of ``unmix serve`` through an ASGI test client: every endpoint, its errors,
the size cap, the token, expiry, restart clean-up and a full disk."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from unmix import audio as audio_io
from unmix.engine import separate_file
from unmix.errors import AudioError, UnmixError
from unmix.web.security import Guard
from unmix.web.upload import UploadError, receive

from .webtools import TestClient, files_in, wait

CLIENT_NAME = "../../../etc/evil name;.m4a"


def post(c: TestClient, path: Path, name: str = "song.m4a", **fields: str) -> Any:
    with open(path, "rb") as fh:
        return c.post("/api/jobs", files={"audio": (name, fh)}, data=fields)


def close_to(data: bytes, path: Path) -> None:
    """``data`` decodes to the audio of ``path`` (max abs <= 1e-5: float results may differ
    in the last bits from one thread to another)."""
    got, rate = sf.read(io.BytesIO(data), dtype="float32")
    want, want_rate = sf.read(path, dtype="float32")
    assert rate == want_rate and got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-5


def test_separate_download_and_delete(
    make_app: Any, clip: Path, tmp_path: Path, separators: Any
) -> None:
    app = make_app()
    jobs = tmp_path / "jobs"
    with TestClient(app) as c:
        info = c.get("/api/info").json()
        assert info["model"] == "umx-preview"
        assert info["targets"] == ["vocals", "drums", "bass", "other"]
        created = post(c, clip, CLIENT_NAME)
        assert created.status_code == 202
        job_id = created.json()["id"]
        body = wait(c, job_id)
        assert body["state"] == "done" and body["progress"] == 1.0 and body["error"] is None
        assert body["name"] == CLIENT_NAME  # shown as given, never used as a path
        assert files_in(jobs) == sorted(
            [job_id, f"{job_id}/stems"] + [f"{job_id}/stems/{t}.wav" for t in info["targets"]]
        )
        # the stems are the engine's (= the CLI's) on the same file
        expected = tmp_path / "expected"
        separate_file(separators.get(tuple(info["targets"])), clip, expected)
        vocals = c.get(body["stems"]["vocals"])
        assert vocals.status_code == 200 and vocals.headers["content-type"] == "audio/wav"
        assert vocals.headers["content-disposition"].startswith(
            'attachment; filename="evil_name-vocals.wav"'
        )
        close_to(vocals.content, expected / "vocals.wav")
        archive = c.get(body["zip"])
        assert archive.status_code == 200
        with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
            assert z.namelist() == [f"{t}.wav" for t in info["targets"]]
            for t in info["targets"]:
                close_to(z.read(f"{t}.wav"), expected / f"{t}.wav")
        events = c.get(f"/api/jobs/{job_id}/events")
        assert events.headers["content-type"].startswith("text/event-stream")
        last = [line for line in events.text.splitlines() if line.startswith("data: ")][-1]
        assert json.loads(last[6:])["state"] == "done"
        assert c.get(f"/api/jobs/{job_id}/stems/guitar").status_code == 404
        assert c.delete(f"/api/jobs/{job_id}").status_code == 204
        assert c.get(f"/api/jobs/{job_id}").status_code == 404
        assert files_in(jobs) == []
    assert files_in(jobs) == []


def test_targets_and_format(make_app: Any, clip: Path, tmp_path: Path, separators: Any) -> None:
    with TestClient(make_app()) as c:
        job_id = post(c, clip, targets="bass, vocals", format="flac").json()["id"]
        body = wait(c, job_id)
        assert body["targets"] == ["bass", "vocals"] and list(body["stems"]) == ["bass", "vocals"]
        got = c.get(body["stems"]["bass"])
        assert got.headers["content-type"] == "audio/flac"
    separate_file(separators.get(("bass", "vocals")), clip, tmp_path / "cli", "flac")
    close_to(got.content, tmp_path / "cli" / "bass.flac")


def test_non_audio_fails_with_the_cli_message(make_app: Any, tmp_path: Path) -> None:
    junk = tmp_path / "notes.mp3"
    junk.write_bytes(b"this is not audio\n" * 100)
    with pytest.raises(AudioError) as cli_error:
        audio_io.info(junk)  # what `unmix separate` reports for it
    with TestClient(make_app()) as c:
        body = wait(c, post(c, junk, "notes.mp3").json()["id"])
    assert body["state"] == "failed"
    assert body["error"] == str(cli_error.value).replace(str(junk), "notes.mp3")
    assert str(tmp_path) not in body["error"]
    assert files_in(tmp_path / "jobs") == []  # a failed job keeps no files


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_size_cap(make_app: Any, clip: Path, tmp_path: Path, declared: bool) -> None:
    cap = clip.stat().st_size - 1
    app = make_app(max_upload=cap)
    with TestClient(app) as c:
        if declared:
            response = post(c, clip)
        else:  # no Content-Length: the cap is enforced while reading
            body, content_type = _multipart(clip.read_bytes())
            response = c.post(
                "/api/jobs", content=iter([body[i : i + 8192] for i in range(0, len(body), 8192)]),
                headers={"content-type": content_type},
            )  # fmt: skip
        assert response.status_code == 413
        assert (
            "limit" in response.json()["error"] and "nothing was kept" in response.json()["error"]
        )
        assert files_in(tmp_path / "jobs") == []
        small = make_app(jobs_dir=tmp_path / "jobs2", max_upload=clip.stat().st_size)
    with TestClient(small) as c:
        assert post(c, clip).status_code == 202  # exactly at the cap is fine


def _multipart(data: bytes, name: str = "audio", filename: str = "x.m4a") -> tuple[bytes, str]:
    boundary = "unmixtestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def test_bad_requests(make_app: Any, clip: Path) -> None:
    c = TestClient(make_app())  # no lifespan: the worker does not run, jobs stay queued
    no_file = c.post("/api/jobs", data={"targets": "vocals"}, files={"other": ("a", b"x")})
    assert no_file.status_code == 400 and "'audio'" in no_file.json()["error"]
    assert (
        c.post("/api/jobs", content=b"{}", headers={"content-type": "application/json"}).status_code
        == 415
    )
    unknown = post(c, clip, targets="vocals,guitar")
    assert unknown.status_code == 400
    assert (
        unknown.json()["error"]
        == "unknown target 'guitar'; this model has vocals, drums, bass, other"
    )
    assert post(c, clip, format="stems").status_code == 400
    empty = c.post("/api/jobs", files={"audio": ("a.wav", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    assert c.get("/api/jobs/0123").status_code == 404
    queued = post(c, clip).json()["id"]
    assert c.get(f"/api/jobs/{queued}").json()["state"] == "queued"
    early = c.get(f"/api/jobs/{queued}/stems/vocals")
    assert early.status_code == 409 and "queued" in early.json()["error"]
    assert c.get(f"/api/jobs/{queued}/stems.zip").status_code == 409
    assert c.get("/static/../../etc/passwd").status_code == 404
    page = c.get("/")
    assert page.status_code == 200 and "<title>unmix" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("style.css", "player.js"):
        assert c.get(f"/static/{name}").status_code == 200


def test_queue_full_is_refused_and_delete_frees_it(
    make_app: Any, clip: Path, tmp_path: Path
) -> None:
    c = TestClient(make_app(max_pending=2))
    ids = [post(c, clip).json()["id"] for _ in range(2)]
    refused = post(c, clip)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "30"
    assert "queue is full" in refused.json()["error"]
    assert c.delete(f"/api/jobs/{ids[0]}").status_code == 204
    assert files_in(tmp_path / "jobs") == [ids[1], f"{ids[1]}/input"]
    assert post(c, clip).status_code == 202


def test_token(make_app: Any, clip: Path) -> None:
    token = "s3cret-token-0123456789"
    c = TestClient(make_app(guard=Guard(token=token)))
    assert c.get("/").status_code == 200  # the page itself asks for the token
    refused = c.get("/api/info")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert c.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(c, clip).status_code == 401
    assert c.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    c.cookies.set("unmix_token", token)
    assert post(c, clip).status_code == 202


def test_host_and_origin(make_app: Any, clip: Path) -> None:
    c = TestClient(
        make_app(guard=Guard.for_bind("127.0.0.1", None)), base_url="http://127.0.0.1:8000"
    )
    assert c.get("/api/info").status_code == 200
    rebound = c.get("/api/info", headers={"host": "attacker.example:8000"})
    assert rebound.status_code == 400  # DNS rebinding
    assert c.get("/", headers={"host": "attacker.example"}).status_code == 400
    with open(clip, "rb") as fh:
        cross = c.post(
            "/api/jobs", files={"audio": ("a.m4a", fh)}, headers={"origin": "http://evil.example"}
        )
    assert cross.status_code == 403
    with open(clip, "rb") as fh:
        same = c.post(
            "/api/jobs", files={"audio": ("a.m4a", fh)}, headers={"origin": "http://127.0.0.1:8000"}
        )
    assert same.status_code == 202


def test_expiry_deletes_jobs_and_files(make_app: Any, clip: Path, tmp_path: Path) -> None:
    now = [1000.0]
    app = make_app(keep_seconds=60.0)
    store = app.state.api.store
    store.clock = lambda: now[0]
    with TestClient(app) as c:
        job_id = post(c, clip).json()["id"]
        assert wait(c, job_id)["expires_in"] == 60.0
        now[0] += 59.0
        assert store.sweep() == [] and c.get(f"/api/jobs/{job_id}").json()["expires_in"] == 1.0
        now[0] += 1.0
        assert store.sweep() == [job_id]
        assert c.get(f"/api/jobs/{job_id}").status_code == 404
        assert files_in(tmp_path / "jobs") == []


def test_restart_removes_leftovers(make_app: Any, clip: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    first = make_app()
    c = TestClient(first)
    job_id = post(c, clip).json()["id"]
    with pytest.raises(UnmixError, match="another unmix serve is using --jobs-dir"):
        make_app()
    first.state.api.store._marker.close()  # killed: no clean-up ran, the lock is gone
    assert files_in(jobs) == [job_id, f"{job_id}/input"]
    second = make_app()
    assert second.state.api.store.removed_at_start == 1
    assert files_in(jobs) == []
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(UnmixError, match="did not create"):
        make_app(jobs_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_full_disk_fails_the_job_cleanly(
    make_app: Any, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("unmix.audio.sinks.SoundFileSink.write", no_space)
    with TestClient(make_app()) as c:
        body = wait(c, post(c, clip).json()["id"])
        assert body["state"] == "failed"
        assert body["error"] == (
            "cannot write stems in the server's job folder: the disk is full (no space left on "
            "device); nothing was kept"
        )
        assert files_in(tmp_path / "jobs") == []


def test_too_little_space_is_refused_before_separating(
    make_app: Any, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        "unmix.web.worker.shutil.disk_usage", lambda _: usage._replace(free=10 << 20)
    )
    with TestClient(make_app()) as c:
        body = wait(c, post(c, clip).json()["id"])
    assert body["state"] == "failed" and "10 MB free" in body["error"]


def test_full_disk_during_upload(
    make_app: Any, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("unmix.web.upload.open", lambda *a, **k: Full(), raising=False)
    c = TestClient(make_app())
    response = post(c, clip)
    assert response.status_code == 507 and "disk is full" in response.json()["error"]
    assert files_in(tmp_path / "jobs") == []


def test_delete_stops_a_running_job(
    make_app: Any, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = threading.Event()

    def endless(*args: Any, progress: Any = None, **kwargs: Any) -> None:
        started.set()
        while True:  # a separation that only ends when its progress callback raises
            progress(0.0)
            time.sleep(0.01)

    monkeypatch.setattr("unmix.web.worker.separate_file", endless)
    with TestClient(make_app()) as c:
        job_id = post(c, clip).json()["id"]
        assert started.wait(60)
        assert c.get(f"/api/jobs/{job_id}").json()["state"] == "running"
        assert c.delete(f"/api/jobs/{job_id}").status_code == 204
        assert c.get(f"/api/jobs/{job_id}").status_code == 404
        deadline = time.monotonic() + 30
        while files_in(tmp_path / "jobs") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert files_in(tmp_path / "jobs") == []
        # the worker goes on with the next job
        assert post(c, clip).status_code == 202


def test_a_stalled_upload_is_refused(tmp_path: Path) -> None:
    body, content_type = _multipart(b"x" * 1000)

    async def stalls() -> AsyncIterator[bytes]:
        yield body[:500]
        await asyncio.sleep(30)  # the client stops sending
        yield body[500:]

    with pytest.raises(UploadError) as refused:
        asyncio.run(receive(stalls(), content_type, tmp_path / "input", 10_000, idle=0.2))
    assert refused.value.status == 408 and "stalled" in str(refused.value)
