"""Verified downloads against a local HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from unmix.config import ModelConfig
from unmix.errors import WeightsError
from unmix.hub import download
from unmix.hub.loading import load_separator
from unmix.hub.registry import BUNDLES, ModelBundle, WeightFile
from unmix.models.umx import OpenUnmix


class _Server:
    """Serves in-memory files; '/cut/<name>' announces the full length but sends half."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                cut = self.path.startswith("/cut/")
                name = self.path.removeprefix("/cut/").lstrip("/")
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.wfile.flush()
                    self.connection.close()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("UNMIX_HOME", str(home))
    monkeypatch.delenv("UNMIX_OFFLINE", raising=False)
    return home


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cache_dir_follows_unmix_home_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("UNMIX_HOME", str(tmp_path / "a"))
    assert download.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("UNMIX_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "xdg" / "unmix"


def test_good_file_is_cached_and_not_downloaded_again(server, cache):
    data = b"weights" * 1000
    server.files["w.pth"] = data
    dest = cache / "m" / "w.pth"
    assert download.fetch(f"{server.url}/w.pth", dest, _sha(data)[:8], progress=False) == dest
    assert dest.read_bytes() == data
    download.fetch(f"{server.url}/w.pth", dest, _sha(data)[:8], progress=False)
    assert server.requests == ["/w.pth"]
    assert [p.name for p in dest.parent.iterdir()] == ["w.pth"]


def test_hash_mismatch_is_rejected_and_nothing_is_cached(server, cache):
    server.files["w.pth"] = b"tampered"
    dest = cache / "m" / "w.pth"
    with pytest.raises(WeightsError, match="SHA-256"):
        download.fetch(f"{server.url}/w.pth", dest, "deadbeef", progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_interrupted_download_leaves_nothing(server, cache):
    data = bytes(range(256)) * 4096
    server.files["w.pth"] = data
    dest = cache / "m" / "w.pth"
    with pytest.raises(WeightsError, match=r"stopped after|cannot download"):
        download.fetch(f"{server.url}/cut/w.pth", dest, _sha(data)[:8], progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_offline_without_cache_says_what_to_download_and_where(cache, monkeypatch):
    monkeypatch.setenv("UNMIX_OFFLINE", "1")
    dest = cache / "umxhq" / "vocals-b62c91ce.pth"
    with pytest.raises(WeightsError) as err:
        download.fetch("https://example.invalid/vocals-b62c91ce.pth", dest, "b62c91ce")
    message = str(err.value)
    assert "https://example.invalid/vocals-b62c91ce.pth" in message
    assert str(dest) in message
    assert "\n" not in message


def test_unreachable_server_gives_one_line_error(cache):
    dest = cache / "m" / "w.pth"
    with pytest.raises(WeightsError, match="download it by hand"):
        download.fetch("http://127.0.0.1:9/w.pth", dest, "00", progress=False, timeout=2)
    assert not dest.exists()


def test_trust_on_first_use_records_and_checks_hash(server, cache):
    server.files["w.h5"] = b"first"
    dest = cache / "m" / "w.h5"
    download.fetch(f"{server.url}/w.h5", dest, "", progress=False)
    recorded = (dest.parent / download.TOFU_FILE).read_text()
    assert _sha(b"first") in recorded
    dest.unlink()  # a later re-download must match the recorded hash
    server.files["w.h5"] = b"changed"
    with pytest.raises(WeightsError, match="SHA-256"):
        download.fetch(f"{server.url}/w.h5", dest, "", progress=False)
    assert not dest.exists()


def test_registered_model_downloads_verifies_and_loads(server, cache, monkeypatch):
    """End to end: a registry entry with files on the local server becomes a Separator."""
    config = ModelConfig(
        targets=("vocals", "other"), hidden_size=16, n_fft=256, n_hop=64, max_bin=100
    )
    files = []
    for k, target in enumerate(config.targets):
        torch.manual_seed(k)
        net = OpenUnmix.from_config(config)
        path = cache.parent / f"{target}.pth"
        torch.save(net.state_dict(), path)
        data = path.read_bytes()
        server.files[f"{target}.pth"] = data
        files.append(
            WeightFile(target, f"{server.url}/{target}.pth", _sha(data)[:16], f"{target}.pth")
        )
    bundle = ModelBundle("tiny-test", config, tuple(files), "test", "test model")
    monkeypatch.setitem(BUNDLES, "tiny-test", bundle)
    sep = load_separator("tiny-test", device="cpu", progress=False)
    assert sep.targets == ("vocals", "other")
    assert len(server.requests) == 2
    load_separator("tiny-test", device="cpu", progress=False)
    assert len(server.requests) == 2
