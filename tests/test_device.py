"""``-d/--device``: cuda:N parses, reaches the loader and picks that GPU (or says why not)."""

from __future__ import annotations

import pytest
import torch

from unmix import device as device_module
from unmix.cli import build_parser, main
from unmix.commands import common
from unmix.device import parse_device, pick_device
from unmix.errors import UnmixError


@pytest.mark.parametrize("text", ["auto", "cpu", "cuda", "cuda:0", "cuda:1", "CUDA:12", "mps"])
def test_device_names_parse(text):
    assert parse_device(text) == text.lower()


def test_bad_device_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        build_parser("separate").parse_args(["separate", "x.wav", "-d", "gpu1"])
    assert "unknown device 'gpu1'; use auto, cpu, cuda, cuda:N" in capsys.readouterr().err


def test_cuda_index_reaches_the_loader(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_load(model, targets, wiener, device, **options):
        seen["device"] = device
        raise UnmixError("stop here")

    monkeypatch.setattr(common, "load_separator", fake_load)
    song = tmp_path / "a.wav"
    song.write_bytes(b"RIFF")
    assert main(["separate", str(song), "-d", "cuda:1", "-o", str(tmp_path / "o")]) == 1
    assert seen == {"device": "cuda:1"} and "stop here" in capsys.readouterr().err


def test_cuda_index_picks_that_gpu_or_says_how_many_there_are(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UnmixError, match=r"has 2 CUDA GPU\(s\), numbered 0 to 1"):
        pick_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UnmixError, match="'cuda:1' was asked for but no CUDA GPU"):
        device_module.pick_device("cuda:1")
