"""``unmix serve`` overhead and memory against the CLI on the same song.

Speed: a 3-minute song (the bundled example tiled, float WAV) separated alternately by the
engine call the CLI makes (``separate_file``, model already loaded) and through a real
uvicorn server in the same process (upload, queue, separation, polling until done); medians.
Memory: peak RSS of ``unmix separate`` on the song vs of an ``unmix serve`` process that
separated the song and then 10 uploads of the example sent at once.

    python benchmarks/bench_web.py --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
import uvicorn

from unmix import audio as audio_io
from unmix.engine import separate_file
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_model
from unmix.web.app import Settings, create_app
from unmix.web.worker import Separators

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "examples" / "nightowl-preview.m4a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(app: object, port: int) -> Iterator[str]:
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join()


def wait_done(client: httpx.Client, job_id: str) -> None:
    while (state := client.get(f"/api/jobs/{job_id}").json()["state"]) not in ("done", "failed"):
        time.sleep(0.05)
    assert state == "done", state


def make_song(folder: Path, seconds: float) -> Path:
    clip, rate = audio_io.read(CLIP)
    reps = int(np.ceil(seconds * rate / clip.shape[-1]))
    song = np.tile(clip, reps)[:, : int(seconds * rate)]
    path = folder / "song.wav"
    audio_io.write(path, song, rate)
    return path


def speed(song: Path, rounds: int, work: Path) -> tuple[list[float], list[float]]:
    config, model = load_model("umx-preview", progress=False)
    seps = Separators(config, model.freeze(), WienerSettings(), torch.device("cpu"))
    app = create_app(Settings("umx-preview", work / "jobs"), seps)
    engine, server = [], []
    with running(app, free_port()) as url, httpx.Client(base_url=url, timeout=600) as client:
        for r in range(rounds):
            t = time.perf_counter()
            separate_file(seps.get(seps.targets), song, work / f"engine{r}")
            engine.append(time.perf_counter() - t)
            t = time.perf_counter()
            with open(song, "rb") as fh:
                job_id = client.post("/api/jobs", files={"audio": ("song.wav", fh)}).json()["id"]
            wait_done(client, job_id)
            server.append(time.perf_counter() - t)
            client.delete(f"/api/jobs/{job_id}")
            print(f"round {r}: engine {engine[-1]:.2f} s, server {server[-1]:.2f} s", flush=True)
    return engine, server


def peak_cli(song: Path, work: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "unmix", "separate", str(song), "--model", "umx-preview",
         "--out-dir", str(work / "cli"), "-q"], check=True,
    )  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(peak, before) / 1024


def peak_server(song: Path, work: Path) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "unmix", "serve", "--port", str(port), "--jobs-dir",
         str(work / "serve-jobs"), "-q"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/api/info").status_code == 200:
                        break
                time.sleep(0.2)
            with open(song, "rb") as fh:
                wait_done(
                    client, client.post("/api/jobs", files={"audio": ("s.wav", fh)}).json()["id"]
                )
            data = CLIP.read_bytes()
            with ThreadPoolExecutor(10) as pool:
                answers = list(pool.map(
                    lambda i: client.post("/api/jobs", files={"audio": (f"{i}.m4a", data)}), range(10)
                ))  # fmt: skip
            for a in answers:
                wait_done(client, a.json()["id"])
            status = Path(f"/proc/{proc.pid}/status").read_text()
            return (
                int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) / 1024
            )
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--speed-only", action="store_true", help="skip the memory part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        song = make_song(work, args.seconds)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores"
        )
        engine, server = speed(song, args.rounds, work)
        e, s = statistics.median(engine), statistics.median(server)
        print(f"median: engine {e:.2f} s, server {s:.2f} s, overhead {100 * (s / e - 1):+.1f} %")
        if args.speed_only:
            return
        print(f"peak RSS: unmix separate {peak_cli(song, work):.0f} MB, "
              f"unmix serve (song + 10 uploads) {peak_server(song, work):.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
