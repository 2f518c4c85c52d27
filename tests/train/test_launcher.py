"""``unmix.train.launcher``: a failed torchrun job is judged by its exit status."""

from __future__ import annotations

import signal
import sys

import pytest

from unmix.errors import UnmixError
from unmix.train import launcher


def test_exit_status_says_what_happened() -> None:
    assert launcher.failure(0) is None
    assert "SIGKILL" in (launcher.failure(-signal.SIGKILL) or "")
    assert "interrupted" in (launcher.failure(128 + signal.SIGINT) or "")
    failed = launcher.failure(1) or ""
    assert "a training process failed" in failed and "exit code 1" in failed


def test_launch_reports_a_killed_torchrun_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun itself killed (e.g. by the OOM killer): the message names the signal."""
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    monkeypatch.setattr(launcher, "torchrun_command", lambda n, f: [sys.executable, "-c", script])
    with pytest.raises(UnmixError) as caught:
        launcher.launch(2, [])
    message = str(caught.value)
    assert "torchrun was stopped by SIGKILL" in message and "--resume" in message
    assert "\n" not in message
