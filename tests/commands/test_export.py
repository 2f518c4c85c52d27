"""``unmix export`` and ``unmix separate --model FILE.onnx``: a fresh checkout exports the
shipped umx-preview offline and separates the example clip with it through the same engine
as the torch path (same files, SDR >= 80 dB against them); bad input is one line, exit 1,
and no output file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.hub.loading import save_model
from unmix.models.architectures import get_architecture

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stems_in(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: sf.read(p, dtype="float32")[0] for p in sorted(folder.rglob("*.wav"))}


def test_export_then_separate_matches_the_torch_path(capsys, clip, tmp_path):
    graph = tmp_path / "preview.onnx"
    code, out, err = cli(capsys, "export", "--model", "umx-preview", "--out", str(graph))
    assert code == 0, err
    assert "ONNX opset 17" in out and "vocals, drums, bass, other" in out
    code, _, err = cli(
        capsys, "separate", str(clip), "--model", str(graph), "-o", str(tmp_path / "onnx")
    )
    assert code == 0, err
    code, _, err = cli(
        capsys, "separate", str(clip), "--model", "umx-preview", "-o", str(tmp_path / "torch")
    )
    assert code == 0, err
    got, expected = stems_in(tmp_path / "onnx"), stems_in(tmp_path / "torch")
    assert sorted(got) == sorted(expected) == ["bass", "drums", "other", "vocals"]
    for name, reference in expected.items():
        assert got[name].shape == reference.shape
        error = got[name] - reference
        assert np.abs(error).max() <= 1e-4
        assert 10 * np.log10(np.sum(reference**2) / np.sum(error**2)) >= 80, name
    # an existing graph is never replaced silently
    code, _, err = cli(capsys, "export", "--model", "umx-preview", "--out", str(graph))
    assert code == 1 and "already exists; use --force" in err


def test_wrong_channel_count_is_one_line_and_no_output(capsys, clip, tmp_path):
    config = ModelConfig(
        targets=("speech", "noise"), n_fft=1024, n_hop=256, nb_channels=1, hidden_size=8,
        nb_layers=1, max_bin=None,
    )  # fmt: skip
    model = get_architecture("umx").build(config)
    randomize(model, 2)
    folder = save_model(tmp_path / "mono-model", config, model)
    graph = tmp_path / "mono.onnx"
    code, _, err = cli(
        capsys, "export", "--model", str(folder), "--out", str(graph), "--niter", "0"
    )
    assert code == 0, err
    out_dir = tmp_path / "out"
    code, _, err = cli(capsys, "separate", str(clip), "--model", str(graph), "-o", str(out_dir))
    assert code == 1
    assert "exported for 1-channel audio" in err and "--channels 2" in err
    assert not [p for p in out_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--out", "model.txt"], "must name a .onnx file"),
        (["--out", "m.onnx", "--model", "umx-preview", "--targets", "piano"], "unknown targets"),
        (["--out", "m.onnx", "--model", "no-such-model"], "unknown model"),
    ],
)
def test_bad_export_arguments(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "export", *argv)
    assert code == 1 and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_corrupt_graph_for_separate(capsys, clip, tmp_path):
    graph = tmp_path / "broken.onnx"
    graph.write_bytes(b"\x00" * 100)
    code, _, err = cli(
        capsys, "separate", str(clip), "--model", str(graph), "-o", str(tmp_path / "o")
    )
    assert code == 1 and "not a readable ONNX model" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.wav"))


def test_step_graph_from_the_command_line(capsys, tmp_path):
    config = ModelConfig(
        n_fft=512, n_hop=128, hidden_size=8, nb_layers=1, max_bin=100, unidirectional=True
    )
    model = get_architecture("umx").build(config)
    randomize(model, 3)
    folder = save_model(tmp_path / "causal", config, model)
    code, out, err = cli(
        capsys, "export", "--model", str(folder), "--out", str(tmp_path / "s.onnx"), "--step"
    )
    assert code == 0, err
    assert "step graph" in out and "128 samples per call" in out
    code, _, err = cli(
        capsys, "export", "--model", "umx-preview", "--out", str(tmp_path / "b.onnx"), "--step"
    )
    assert code == 1 and "bidirectional" in err and err.count("\n") == 1
    assert not (tmp_path / "b.onnx").exists()


def test_evaluate_with_an_exported_graph(capsys, musdb_root, tmp_path):
    """`unmix evaluate --model FILE.onnx` separates through the same engine (one track)."""
    graph = tmp_path / "preview.onnx"
    assert main(["export", "--model", "umx-preview", "--out", str(graph), "--niter", "0"]) == 0
    argv = ["evaluate", "--model", str(graph), "--root", str(musdb_root), "--subset", "train"]
    argv += ["--tracks", "Fixture - Night Owl A", "--metrics", "sdr", "--no-plot"]
    code, out, err = cli(capsys, *argv, "--out-dir", str(tmp_path / "scores"))
    assert code == 0, err
    assert "device cpu" in out and "vocals" in out


def test_layout_option(capsys, tmp_path):
    """--layout whole writes the plain-operator graph (for runtimes without Scan), recorded in
    the metadata; the step graph has no layout to choose."""
    import onnx

    config = ModelConfig(n_fft=512, n_hop=128, hidden_size=8, nb_layers=1, max_bin=100)
    model = get_architecture("umx").build(config)
    randomize(model, 4)
    folder = save_model(tmp_path / "small", config, model)
    for layout, scans in (("whole", 0), ("chunked", 2)):
        path = tmp_path / f"{layout}.onnx"
        code, _, err = cli(
            capsys, "export", "--model", str(folder), "--out", str(path), "--layout", layout
        )
        assert code == 0, err
        graph = onnx.load(path)
        assert {p.key: p.value for p in graph.metadata_props}["layout"] == layout
        assert sum(node.op_type == "Scan" for node in graph.graph.node) == scans
    code, _, err = cli(
        capsys, "export", "--model", str(folder), "--out", str(tmp_path / "s.onnx"), "--step",
        "--layout", "whole",
    )  # fmt: skip
    assert code == 1 and "--layout applies to the whole-song graph" in err
    assert not (tmp_path / "s.onnx").exists()
