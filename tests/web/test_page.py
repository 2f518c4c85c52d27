"""The page in a real browser: Playwright driving Debian's Chromium against a uvicorn server.

Uploads the bundled example, waits for the stem rows, plays (the transport advances), mutes
and solos stems, downloads the zip and compares its stems with ``unmix separate``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from unmix.web.security import Guard

from .conftest import running
from .webtools import files_in

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
#: set to a path to save the README's screenshot while the test runs
SCREENSHOT = os.environ.get("UNMIX_SCREENSHOT")


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (scripts/test installs it)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


def expect_gains(page: Any, expected: dict[str, float]) -> None:
    """The stems' gain-node values become ``expected`` (the audio thread applies a change
    on its next render quantum; waits up to 10 s)."""
    wanted = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    with contextlib.suppress(Exception):
        page.wait_for_function(
            f"JSON.stringify(unmix.player.gains(), Object.keys(unmix.player.gains()).sort())"
            f" === {json.dumps(wanted)}",
            timeout=10_000,
        )
    assert page.evaluate("unmix.player.gains()") == expected


def test_page_separates_plays_and_downloads(
    server: str, browser: Any, clip: Path, tmp_path: Path
) -> None:
    # bypass_csp: the page's policy forbids eval, which wait_for_function needs
    page = browser.new_page(
        accept_downloads=True, bypass_csp=True, viewport={"width": 1000, "height": 900}
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server + "/")
    page.wait_for_selector("#targets input[value=vocals]")
    assert "umx-preview" in page.text_content("#model")
    page.set_input_files("#file", str(clip))
    page.click("#start")
    page.wait_for_function(
        "document.querySelectorAll('#stems .stem').length === 4", timeout=120_000
    )
    names = page.eval_on_selector_all("#stems .stem", "rows => rows.map(r => r.dataset.stem)")
    assert names == ["vocals", "drums", "bass", "other"]

    page.click("#play")
    page.wait_for_function("unmix.player.currentTime() > 0.2", timeout=20_000)
    first = page.evaluate("unmix.player.currentTime()")
    page.wait_for_function(f"unmix.player.currentTime() > {first}", timeout=20_000)
    assert page.evaluate("unmix.player.ctx.state") == "running"

    page.click("li[data-stem=vocals] .mute")
    expect_gains(page, {"vocals": 0, "drums": 1, "bass": 1, "other": 1})
    page.click("li[data-stem=drums] .solo")
    expect_gains(page, {"vocals": 0, "drums": 1, "bass": 0, "other": 0})
    page.click("li[data-stem=bass] .solo")  # two soloed stems play together
    expect_gains(page, {"vocals": 0, "drums": 1, "bass": 1, "other": 0})
    page.click("li[data-stem=drums] .solo")
    page.click("li[data-stem=bass] .solo")
    expect_gains(page, {"vocals": 0, "drums": 1, "bass": 1, "other": 1})
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)

    page.evaluate("document.activeElement.blur()")
    playing = page.evaluate("unmix.player.playing")
    page.keyboard.press("Space")  # the keyboard plays and pauses
    assert page.evaluate("unmix.player.playing") is not playing

    with page.expect_download() as download:
        page.click("#zip")
    archive = download.value.path()
    assert download.value.suggested_filename == "nightowl-preview-stems.zip"

    cli = tmp_path / "cli"
    subprocess.run(
        [sys.executable, "-m", "unmix", "separate", str(clip), "--model", "umx-preview",
         "--out-dir", str(cli), "-q"],
        check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted(f"{n}.wav" for n in names)
        for name in names:
            got, _ = sf.read(io.BytesIO(z.read(f"{name}.wav")), dtype="float32")
            (stem,) = cli.rglob(f"{name}.wav")  # wherever the CLI's layout puts it
            want, _ = sf.read(stem, dtype="float32")
            assert got.shape == want.shape
            assert np.max(np.abs(got - want)) <= 1e-5
    assert errors == []


def test_page_fits_a_phone(server: str, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 360, "height": 740}, device_scale_factor=2)
    page.goto(server + "/")
    page.wait_for_selector("#targets input[value=vocals]")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.keyboard.press("Tab")  # the file picker is reachable by keyboard
    assert page.evaluate("document.activeElement.id") == "file"


def test_page_with_a_token(make_app: Any, browser: Any, clip: Path, tmp_path: Path) -> None:
    token = "page-token-0123456789"
    cap = clip.stat().st_size - 1  # and a song over the cap is refused before uploading
    app = make_app(
        guard=Guard(token=token, hosts=Guard.for_bind("127.0.0.1", None).hosts), max_upload=cap
    )
    with running(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#token-box:not([hidden])")  # locked: the page asks
        assert page.text_content("#model") == "Locked"
        page.goto(url + "/#token=" + token)  # pasted into the open page
        page.wait_for_selector("#targets input[value=vocals]")
        assert "#" not in page.url  # the token leaves the address bar
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        assert cookies["unmix_token"] == token  # so that plain download links carry it
        fresh = browser.new_page()  # opened from a link
        fresh.goto(url + "/#token=" + token)
        fresh.wait_for_selector("#targets input[value=vocals]")
        assert "umx-preview" in fresh.text_content("#model")
        fresh.set_input_files("#file", str(clip))
        fresh.click("#start")
        fresh.wait_for_selector("#error:has-text('this server takes at most')")
    assert files_in(tmp_path / "jobs") == []
