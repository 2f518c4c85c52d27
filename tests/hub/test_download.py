"""Verified downloads against a local HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from unmix.config import ModelConfig
from unmix.errors import WeightsError
from unmix.hub import download
from unmix.hub.loading import load_separator
from unmix.hub.registry import BUNDLES, ModelBundle, WeightFile
from unmix.models.umx import OpenUnmix


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cache_dir_follows_unmix_home_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("UNMIX_HOME", str(tmp_path / "a"))
    assert download.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("UNMIX_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "xdg" / "unmix"


def test_good_file_is_cached_and_not_downloaded_again(file_server, unmix_home):
    data = b"weights" * 1000
    file_server.files["w.pth"] = data
    dest = unmix_home / "m" / "w.pth"
    assert download.fetch(f"{file_server.url}/w.pth", dest, _sha(data)[:8], progress=False) == dest
    assert dest.read_bytes() == data
    download.fetch(f"{file_server.url}/w.pth", dest, _sha(data)[:8], progress=False)
    assert file_server.requests == ["/w.pth"]
    assert [p.name for p in dest.parent.iterdir()] == ["w.pth"]


def test_hash_mismatch_is_rejected_and_nothing_is_cached(file_server, unmix_home):
    file_server.files["w.pth"] = b"tampered"
    dest = unmix_home / "m" / "w.pth"
    with pytest.raises(WeightsError, match="SHA-256"):
        download.fetch(f"{file_server.url}/w.pth", dest, "deadbeef", progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_interrupted_download_leaves_nothing(file_server, unmix_home):
    data = bytes(range(256)) * 4096
    file_server.files["w.pth"] = data
    dest = unmix_home / "m" / "w.pth"
    with pytest.raises(WeightsError, match=r"stopped after|cannot download"):
        download.fetch(f"{file_server.url}/cut/w.pth", dest, _sha(data)[:8], progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_offline_without_cache_says_what_to_download_and_where(unmix_home, monkeypatch):
    monkeypatch.setenv("UNMIX_OFFLINE", "1")
    dest = unmix_home / "umxhq" / "vocals-b62c91ce.pth"
    with pytest.raises(WeightsError) as err:
        download.fetch("https://example.invalid/vocals-b62c91ce.pth", dest, "b62c91ce")
    message = str(err.value)
    assert "https://example.invalid/vocals-b62c91ce.pth" in message
    assert str(dest) in message
    assert "\n" not in message


def test_unreachable_server_gives_one_line_error(unmix_home):
    dest = unmix_home / "m" / "w.pth"
    with pytest.raises(WeightsError, match="download it by hand"):
        download.fetch("http://127.0.0.1:9/w.pth", dest, "00", progress=False, timeout=2)
    assert not dest.exists()


def test_trust_on_first_use_records_and_checks_hash(file_server, unmix_home):
    file_server.files["w.h5"] = b"first"
    dest = unmix_home / "m" / "w.h5"
    download.fetch(f"{file_server.url}/w.h5", dest, "", progress=False)
    recorded = (dest.parent / download.TOFU_FILE).read_text()
    assert _sha(b"first") in recorded
    dest.unlink()  # a later re-download must match the recorded hash
    file_server.files["w.h5"] = b"changed"
    with pytest.raises(WeightsError, match="SHA-256"):
        download.fetch(f"{file_server.url}/w.h5", dest, "", progress=False)
    assert not dest.exists()


def test_registered_model_downloads_verifies_and_loads(file_server, unmix_home, monkeypatch):
    """End to end: a registry entry with files on the local server becomes a Separator."""
    config = ModelConfig(
        targets=("vocals", "other"), hidden_size=16, n_fft=256, n_hop=64, max_bin=100
    )
    files = []
    for k, target in enumerate(config.targets):
        torch.manual_seed(k)
        net = OpenUnmix.from_config(config)
        path = unmix_home.parent / f"{target}.pth"
        torch.save(net.state_dict(), path)
        data = path.read_bytes()
        file_server.files[f"{target}.pth"] = data
        files.append(
            WeightFile(target, f"{file_server.url}/{target}.pth", _sha(data)[:16], f"{target}.pth")
        )
    bundle = ModelBundle("tiny-test", config, tuple(files), "test", "test model")
    monkeypatch.setitem(BUNDLES, "tiny-test", bundle)
    sep = load_separator("tiny-test", device="cpu", progress=False)
    assert sep.targets == ("vocals", "other")
    assert len(file_server.requests) == 2
    load_separator("tiny-test", device="cpu", progress=False)
    assert len(file_server.requests) == 2
