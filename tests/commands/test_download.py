"""``unmix download``, and ``unmix train`` / ``unmix evaluate`` without ``--root`` (issue 18
item 3): the MUSDB18 previews come from a local HTTP server on 127.0.0.1 serving a zip of
real ``.stem.mp4`` tracks the test builds; the cache is ``UNMIX_HOME`` in tmp_path."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from unmix.cli import main
from unmix.hub import datasets, registry
from unmix.tracks import VALIDATION_TRACKS

from ..fileserver import FileServer, make_zip
from ..helpers import TINY_RUN


@pytest.fixture()
def previews(file_server: FileServer, unmix_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Serves a preview zip of the ``musdb_root`` fixture's tracks (train/) plus one of them
    as test/; returns the folder the previews will be extracted to."""
    served = dataclasses.replace(datasets.MUSDB18_PREVIEW, url=f"{file_server.url}/previews.zip")
    monkeypatch.setitem(datasets.DATASETS, datasets.PREVIEW, served)
    return served.root


@pytest.fixture()
def preview_zip(musdb_root: Path) -> bytes:
    tracks = sorted((musdb_root / "train").glob("*.stem.mp4"))
    members = {f"train/{p.name}": p.read_bytes() for p in tracks}
    first = next(p for p in tracks if p.stem.removesuffix(".stem") in VALIDATION_TRACKS)
    members[f"test/{first.name}"] = first.read_bytes()
    return make_zip(members)


def test_download_prefetches_the_previews_once(
    file_server: FileServer, previews: Path, preview_zip: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    file_server.files["previews.zip"] = preview_zip
    assert main(["download", "musdb18-preview"]) == 0
    assert capsys.readouterr().out.strip() == f"musdb18-preview: {previews}"
    assert len(list((previews / "train").glob("*.stem.mp4"))) == 6
    assert main(["download", "musdb18-preview"]) == 0
    assert file_server.requests == ["/previews.zip"]


def test_download_fetches_a_registered_model_verified(
    file_server: FileServer, unmix_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"weights" * 100
    file_server.files["v.pth"] = data
    wf = registry.WeightFile(
        "vocals", f"{file_server.url}/v.pth", hashlib.sha256(data).hexdigest()[:8], "v.pth"
    )
    bundle = dataclasses.replace(registry.BUNDLES["umx"], files=(wf,))
    monkeypatch.setitem(registry.BUNDLES, "umx", bundle)
    assert main(["download", "umx"]) == 0
    assert (unmix_home / "umx" / "v.pth").read_bytes() == data
    # a changed file on the server is refused, as for any download
    (unmix_home / "umx" / "v.pth").unlink()
    file_server.files["v.pth"] = b"changed"
    assert main(["download", "umx"]) == 1
    assert not (unmix_home / "umx" / "v.pth").exists()


def test_download_names_are_checked_before_anything_is_fetched(
    file_server: FileServer, previews: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["download", "musdb18-preview", "no-such-model"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'no-such-model'" in err and "umxhq" in err
    assert file_server.requests == []


def test_download_of_the_packaged_model_needs_nothing(
    unmix_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["download", "umx-preview"]) == 0
    assert "installed with unmix" in capsys.readouterr().out
    assert not unmix_home.exists()


def test_evaluate_without_root_scores_on_the_previews(
    file_server: FileServer,
    previews: Path,
    preview_zip: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file_server.files["previews.zip"] = preview_zip
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", "umx-preview", "--out-dir", str(out), "--no-plot"]
    assert main([*argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"at {previews}, subset test, 1 tracks" in printed
    # AAC-coded stems, unregularized: the table says ISR/SIR/SAR are rounding noise
    assert "rounding noise" in printed and "--regularization" in printed
    assert (out / "scores.csv").is_file()
    assert file_server.requests == ["/previews.zip"]


@pytest.mark.slow
def test_train_without_root_trains_on_the_previews(
    file_server: FileServer, previews: Path, preview_zip: bytes, tmp_path: Path
) -> None:
    file_server.files["previews.zip"] = preview_zip
    out = tmp_path / "model"
    flags = [f"--{k}={v}" for k, v in {**TINY_RUN, "epochs": 1, "threads": 1}.items()]
    argv = ["train", "--output", str(out), "--cache-dir", str(tmp_path / "dec"), *flags]
    assert main([*argv, "--quiet"]) == 0
    assert (out / "vocals.safetensors").is_file()
    settings = json.loads((out / "training.json").read_text())
    assert str(previews) in json.dumps(settings)  # the run records where its data came from
    assert file_server.requests == ["/previews.zip"]


def test_resume_without_root_never_downloads(
    file_server: FileServer, previews: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--output", str(tmp_path / "model"), "--resume", "--quiet"]
    assert main(argv) == 1
    assert "--root is required" in capsys.readouterr().err
    assert file_server.requests == []
