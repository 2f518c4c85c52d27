"""Fixtures of the web tests: the shipped ``umx-preview`` model, loaded once, and apps on it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn

from unmix.filtering import WienerSettings
from unmix.hub.loading import load_model
from unmix.web.app import Settings, create_app
from unmix.web.security import Guard
from unmix.web.worker import Separators

MODEL = "umx-preview"


@pytest.fixture(scope="session")
def separators() -> Separators:
    """``umx-preview`` on the CPU with the CLI's default Wiener settings."""
    config, model = load_model(MODEL, progress=False)
    return Separators(config, model.freeze(), WienerSettings(), torch.device("cpu"))


AppFactory = Callable[..., Any]


@pytest.fixture
def make_app(tmp_path: Path, separators: Separators) -> Iterator[AppFactory]:
    """``make_app(**settings)``: a fresh app on ``tmp_path/jobs``; closed at the end."""
    apps: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings = Settings(MODEL, overrides.pop("jobs_dir", tmp_path / "jobs"), **overrides)
        app = create_app(settings, separators)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.api.store.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Run ``app`` on a real uvicorn server on 127.0.0.1 (a free port) in a thread."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)


@pytest.fixture
def server(make_app: AppFactory, tmp_path: Path) -> Iterator[str]:
    """The base URL of a loopback server with the default settings; on stop, the jobs
    folder must be empty."""
    with running(make_app(guard=Guard.for_bind("127.0.0.1", None))) as url:
        yield url
    assert [p.name for p in (tmp_path / "jobs").iterdir()] == [".unmix-serve-jobs"]
