"""``unmix serve`` options: safe defaults, an exposed server needs a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from unmix.cli import main
from unmix.errors import UnmixError
from unmix.web.server import ServeOptions, check_options

TOKEN = "0123456789abcdef0123"


def test_loopback_needs_no_token() -> None:
    assert check_options(ServeOptions()) == []
    assert check_options(ServeOptions(host="::1")) == []


#: hosts that expose the server (no test binds them): every IPv6 interface, a public address
EXPOSED = ("::", "192.0.2.10")


@pytest.mark.parametrize("host", EXPOSED)
def test_exposed_server_needs_a_token(
    host: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(UnmixError, match="give --token"):
        check_options(ServeOptions(host=host))
    with pytest.raises(UnmixError, match="at least 16 characters"):
        check_options(ServeOptions(host=host, token="short"))
    (warning,) = check_options(ServeOptions(host=host, token=TOKEN))
    assert "reachable from the network" in warning
    # the command refuses before loading anything or touching the jobs folder
    jobs = tmp_path / "jobs"
    assert main(["serve", "--host", host, "--jobs-dir", str(jobs)]) == 1
    assert "give --token" in capsys.readouterr().err
    assert not jobs.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ServeOptions(max_upload_mb=0), "--max-upload-mb must be > 0"),
        (ServeOptions(keep_minutes=0), "--keep-minutes must be > 0"),
        (ServeOptions(max_queue=0), "--max-queue must be between"),
        (ServeOptions(port=70000), "--port must be between"),
    ],
)
def test_bad_options(options: ServeOptions, message: str) -> None:
    with pytest.raises(UnmixError, match=message):
        check_options(options)
