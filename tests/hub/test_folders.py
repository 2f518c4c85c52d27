"""Model folders and archives from untrusted sources: one-line errors for bad metadata and
encrypted archives (issue 20, item 10), weight-file names that cannot leave the folder."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.errors import UnmixError
from unmix.hub import folders
from unmix.hub.folders import read_folder, weight_files
from unmix.hub.loading import load_model
from unmix.models.architectures import get_architecture
from unmix.models.umx import OpenUnmix

TINY = ModelConfig(targets=("vocals", "drums"), n_fft=256, n_hop=64, hidden_size=16, max_bin=80)


def _upstream(folder, meta: object):
    folder.mkdir()
    for target in TINY.targets:
        torch.save(OpenUnmix.from_config(TINY).state_dict(), folder / f"{target}-0a1b2c3d.pth")
    (folder / "separator.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize(
    "meta",
    [
        {"sample_rate": "forty-four"},
        {"sample_rate": [44100]},
        {"nhop": {"x": 1}},
        {"nhop": 64.5},
        {"nhop": True},
        {"sample_rate": -44100},
        {"sample_rate": 1e400},
    ],
)
def test_bad_types_in_separator_json_give_one_line(tmp_path, meta):
    folder = _upstream(tmp_path / "m", meta)
    with pytest.raises(UnmixError, match=r"separator\.json: '(sample_rate|nhop)' must be") as err:
        read_folder(folder)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("meta", [[1, 2], "text", 3])
def test_separator_json_that_is_not_an_object(tmp_path, meta):
    with pytest.raises(UnmixError, match="must hold a JSON object"):
        read_folder(_upstream(tmp_path / "m", meta))


def test_good_separator_json_sets_rate_and_hop(tmp_path):
    config, model = read_folder(_upstream(tmp_path / "m", {"sample_rate": 16000.0, "nhop": 128}))
    assert (config.sample_rate, config.n_hop, model.targets) == (16000, 128, TINY.targets)


def test_separate_with_bad_separator_json_is_one_line(tmp_path, capsys):
    folder = _upstream(tmp_path / "m", {"sample_rate": "x"})
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros((2205, 2), np.float32), 44100)
    assert main(["separate", str(wav), "--model", str(folder), "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "'sample_rate' must be a positive whole number" in err and "\n" not in err


def _encrypted_zip(path, name: str = "vocals.h5"):
    """A zip whose member is flagged as encrypted (bit 0 of both headers)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, b"0" * 64)
    data = bytearray(path.read_bytes())
    data[data.index(b"PK\x03\x04") + 6] |= 1
    data[data.index(b"PK\x01\x02") + 8] |= 1
    path.write_bytes(bytes(data))
    return path


def test_encrypted_zip_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNMIX_HOME", str(tmp_path / "cache"))
    archive = _encrypted_zip(tmp_path / "weights.zip")
    with pytest.raises(UnmixError, match=r"'vocals\.h5' is encrypted") as err:
        load_model(archive)
    assert "\n" not in str(err.value)
    assert main(["convert", str(archive), str(tmp_path / "out")]) == 1
    assert "is encrypted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    extracted = tmp_path / "cache" / "extracted"
    assert not extracted.exists() or not any(extracted.iterdir())


def test_config_json_targets_cannot_name_files_outside_the_folder(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    config = {**TINY.to_dict(), "targets": ["../../outside"]}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnmixError, match="target names must be"):
        read_folder(folder)


def test_weight_file_stems(tmp_path):
    for name in ("vocals-b62c91ce.pth", "drums_x.pth", "bass.safetensors", "bass.pth", ".o.pth"):
        (tmp_path / name).write_bytes(b"")
    assert {k: p.name for k, p in weight_files(tmp_path).items()} == {
        "bass": "bass.safetensors",
        "drums": "drums_x.pth",
        "vocals": "vocals-b62c91ce.pth",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" " * (1 << 20) + "{}", "larger than 1,048,576 bytes"),
        ("[" * 100_000 + "]" * 100_000, "cannot read"),
        ('{"targets": ', "cannot read"),
    ],
)
def test_oversized_deep_or_broken_config_json_is_one_line(tmp_path, text, message):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    with pytest.raises(UnmixError, match=message) as err:
        read_folder(folder)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_config_far_larger_than_its_weight_files_is_refused_before_building(tmp_path, monkeypatch):
    """A 1 KB folder must not make unmix allocate 600 MB (issue 20, item 6)."""
    folder = tmp_path / "m"
    folder.mkdir()
    big = ModelConfig(targets=("vocals",), n_fft=16384, n_hop=4096, hidden_size=2048, max_bin=None)
    assert big.parameter_count() > 100_000_000
    (folder / "config.json").write_text(json.dumps(big.to_dict()))
    (folder / "vocals.safetensors").write_bytes(b"\0" * 1000)

    def never(config):
        raise AssertionError("the model was built")

    umx = dataclasses.replace(get_architecture("umx"), build=never)
    monkeypatch.setattr(folders, "get_architecture", lambda name: umx)
    with pytest.raises(UnmixError, match=r"needs about [\d,]+ parameters, but the weight files"):
        read_folder(folder)
