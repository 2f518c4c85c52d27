"""``unmix convert``: never replaces the folder it runs in (issue 20, item 10)."""

from __future__ import annotations

import pytest

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.hub.loading import save_model
from unmix.models.umx import UMX, OpenUnmix

TINY = ModelConfig(targets=("vocals",), n_fft=256, n_hop=64, hidden_size=16, max_bin=80)


def _model(folder):
    return save_model(folder, TINY, UMX({"vocals": OpenUnmix.from_config(TINY)}))


@pytest.mark.parametrize("dest", [".", "..", "./"])
def test_convert_into_the_current_folder_with_force_is_one_line(
    tmp_path, monkeypatch, capsys, dest
):
    source = _model(tmp_path / "source")
    here = _model(tmp_path / "outer" / "here")
    before = sorted(p.name for p in here.iterdir())
    monkeypatch.chdir(here)
    assert main(["convert", str(source), dest, "--force"]) == 1
    err = capsys.readouterr().err.strip()
    assert "is the current folder or holds it" in err and "\n" not in err
    assert sorted(p.name for p in here.iterdir()) == before


def test_convert_with_force_still_replaces_a_model_folder(tmp_path, capsys):
    source = _model(tmp_path / "source")
    dest = _model(tmp_path / "dest")
    (dest / "vocals.safetensors").write_bytes(b"old")
    assert main(["convert", str(source), str(dest), "--force"]) == 0
    assert "(UMX; targets vocals" in capsys.readouterr().out
    assert (dest / "vocals.safetensors").read_bytes() == (
        source / "vocals.safetensors"
    ).read_bytes()
