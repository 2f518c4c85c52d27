"""NNabla UMX weights: .h5 files in the documented layout load into the same network as the
PyTorch weights they were written from; errors name the arrays; folders, files, zips, the
registry and the CLI all accept them."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from unmix import audio as audio_io
from unmix.cli import main
from unmix.config import CONFIGS, ModelConfig
from unmix.errors import UnmixError, WeightsError
from unmix.hub import registry
from unmix.hub.h5 import read_h5
from unmix.hub.loading import load_model, load_separator, save_model
from unmix.hub.nnabla import read_nnabla_file, umx_state_dict
from unmix.models.umx import UMX, OpenUnmix

from ..nnabla_files import random_state, umx_arrays, write_h5

TARGETS = ("vocals", "drums", "bass", "other")
TINY = ModelConfig(n_fft=512, n_hop=128, hidden_size=16, nb_layers=2, max_bin=120)


pytestmark = pytest.mark.usefixtures("one_thread")


def write_umx_folder(folder: Path, states: dict[str, dict[str, torch.Tensor]]) -> Path:
    """An extracted NNabla zip: one ``<target>.h5`` per target."""
    folder.mkdir(parents=True, exist_ok=True)
    for target, state in states.items():
        write_h5(folder / f"{target}.h5", umx_arrays(state))
    return folder


def tiny_states(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    return {t: random_state(TINY, seed + k) for k, t in enumerate(TARGETS)}


def torch_folder(tmp: Path, config: ModelConfig, states: dict) -> Path:
    """The same weights saved in our own format (the PyTorch reference)."""
    models = {}
    for target, state in states.items():
        net = OpenUnmix.from_config(config)
        net.load_state_dict(state)
        models[target] = net
    return save_model(tmp, config.with_(targets=tuple(states)), UMX(models))


def separate(model, audio: np.ndarray, **kwargs) -> torch.Tensor:
    sep = load_separator(model, device="cpu", **kwargs)
    with torch.no_grad():
        return sep(torch.from_numpy(audio)[None])


@pytest.fixture(scope="module")
def umxhq_h5(tmp_path_factory) -> tuple[Path, Path]:
    """Full-size umxhq weights as an NNabla folder and as our own folder."""
    states = {t: random_state(CONFIGS["umxhq"], 20 + k) for k, t in enumerate(TARGETS)}
    h5_dir = write_umx_folder(tmp_path_factory.mktemp("nnabla") / "umxhq", states)
    ref_dir = torch_folder(tmp_path_factory.mktemp("torch"), CONFIGS["umxhq"], states)
    return h5_dir, ref_dir


def test_umxhq_h5_folder_gives_the_pytorch_stems(umxhq_h5, clip):
    h5_dir, ref_dir = umxhq_h5
    audio, _ = audio_io.read(clip, duration=3.0)
    config, model = load_model(h5_dir)
    assert config == CONFIGS["umxhq"]
    assert model.targets == TARGETS
    expected = separate(ref_dir, audio)
    got = separate(h5_dir, audio)
    err = (got - expected).abs().max().item()
    assert err <= 1e-4, f"max abs difference {err:.2e}"
    assert expected.abs().max() > 1e-3


def test_mapping_gives_the_same_network_outputs():
    """Exact per-layer mapping: the network of the mapped state equals the original one on
    random magnitudes (the recurrent bias is folded into the input bias)."""
    config = TINY.with_(nb_layers=3)
    state = random_state(config, 5)
    mapped = umx_state_dict(dict(umx_arrays(state)), "test")
    assert torch.equal(mapped["fc3.weight"], state["fc3.weight"])
    assert torch.equal(mapped["lstm.weight_hh_l2_reverse"], state["lstm.weight_hh_l2_reverse"])
    assert not mapped["lstm.bias_hh_l1"].any()
    a, b = OpenUnmix.from_config(config), OpenUnmix.from_config(config)
    a.load_state_dict(state)
    b.load_state_dict(mapped)
    x = torch.rand(2, 2, config.nb_bins, 7)
    with torch.no_grad():
        torch.testing.assert_close(b.eval()(x), a.eval()(x), atol=1e-6, rtol=1e-5)


def test_unidirectional_single_layer_maps(tmp_path):
    config = TINY.with_(unidirectional=True, nb_layers=1)
    state = random_state(config, 6)
    arrays = dict(umx_arrays(state))
    assert "lstm/lstm/weight" not in arrays
    path = write_h5(tmp_path / "vocals.h5", list(arrays.items()))
    loaded, model = load_model(path)
    assert loaded.unidirectional and loaded.nb_layers == 1 and loaded.targets == ("vocals",)
    x = torch.rand(1, 2, config.nb_bins, 5)
    ref = OpenUnmix.from_config(config)
    ref.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[..., 0], ref.eval()(x), atol=1e-6, rtol=1e-5)


def _arrays_without(state, *names: str) -> list:
    return [(n, a) for n, a in umx_arrays(state) if n not in names]


def test_missing_arrays_are_named(tmp_path):
    path = write_h5(
        tmp_path / "bass.h5",
        _arrays_without(random_state(TINY, 0), "fc2/bn/var", "lstm/lstm/weight"),
    )
    with pytest.raises(WeightsError, match="lacks the arrays") as info:
        load_model(path)
    assert "fc2/bn/var" in str(info.value) and "lstm/lstm/weight" in str(info.value)


def test_wrong_shapes_are_named(tmp_path):
    arrays = umx_arrays(random_state(TINY, 0))
    arrays = [(n, a[:-1] if n == "fc2/affine/W" else a) for n, a in arrays]
    path = write_h5(tmp_path / "drums.h5", arrays)
    with pytest.raises(WeightsError, match=r"fc2/affine/W \(31, 16\) \(expected \(32, 16\)\)"):
        load_model(path)


def test_extra_arrays_are_ignored(tmp_path, caplog):
    state = random_state(TINY, 0)
    kernels = [
        (k, np.ones((TINY.nb_bins, 1, TINY.n_fft), np.float32)) for k in ("conv_r", "conv_i")
    ]
    extras = [("conv_cos", np.ones(3, np.float32)), ("stft/conv_sin", np.ones(3, np.float32))]
    unknown = [("solver/momentum", np.zeros(2, np.float32))]
    path = write_h5(tmp_path / "vocals.h5", kernels + umx_arrays(state) + extras + unknown)
    with caplog.at_level(logging.WARNING, logger="unmix.hub.nnabla"):
        weights = read_nnabla_file(path)
    assert "conv_r" not in read_h5(path)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "solver/momentum" in warned and "conv_" not in warned
    plain = umx_state_dict(dict(umx_arrays(state)), "plain")
    assert all(torch.equal(plain[k], v) for k, v in weights.states["vocals"].items())


def test_sigsep_port_with_affine_biases_is_refused(tmp_path):
    arrays = [*umx_arrays(random_state(TINY, 0)), ("fc1/affine/b", np.zeros(16, np.float32))]
    with pytest.raises(WeightsError, match="sigsep open-unmix-nnabla"):
        load_model(write_h5(tmp_path / "vocals.h5", arrays))


def test_not_an_hdf5_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "vocals.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError, match=r"not a valid NNabla \.h5"):
        load_model(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as fh:
        fh.create_dataset("weights", data=np.zeros(3))
    with pytest.raises(WeightsError, match="no input_mean array"):
        load_model(other)


def _wav(tmp_path: Path, seconds: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "song.wav"
    sf.write(path, 0.1 * rng.standard_normal((int(44100 * seconds), 2)), 44100)
    return path


def test_cli_separates_with_an_h5_folder_and_a_zip(tmp_path, monkeypatch):
    monkeypatch.setenv("UNMIX_HOME", str(tmp_path / "cache"))
    states = tiny_states()
    folder = write_umx_folder(tmp_path / "umx", states)
    archive = tmp_path / "umx.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"umx/{path.name}")  # a top-level folder inside the zip
    wav = _wav(tmp_path)
    for model, out in ((folder, "out-dir"), (archive, "out-zip")):
        argv = ["separate", str(wav), "--model", str(model), "--out-dir", str(tmp_path / out)]
        code = main([*argv, "--filename", "{track}/{stem}.{ext}"])  # the same folder for both
        assert code == 0
        written = sorted(p.name for p in (tmp_path / out / "song").glob("*.wav"))
        assert written == sorted(f"{t}.wav" for t in TARGETS)
    a, _ = sf.read(tmp_path / "out-dir" / "song" / "bass.wav")
    b, _ = sf.read(tmp_path / "out-zip" / "song" / "bass.wav")
    np.testing.assert_array_equal(a, b)
    # the zip was extracted inside the cache only
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["cache", "out-dir", "out-zip", "song.wav", "umx", "umx.zip"]
    )
    assert any((tmp_path / "cache" / "extracted").glob("umx-*/umx/bass.h5"))


def test_convert_writes_an_equivalent_safetensors_folder(tmp_path, capsys):
    states = tiny_states(3)
    folder = write_umx_folder(tmp_path / "umx", states)
    dest = tmp_path / "converted"
    assert main(["convert", str(folder), str(dest)]) == 0
    assert f"-> {dest}/ (UMX; targets vocals, drums, bass, other" in capsys.readouterr().out
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["config.json", *(f"{t}.safetensors" for t in TARGETS)]
    )
    config = json.loads((dest / "config.json").read_text())
    assert config["arch"] == "umx" and config["targets"] == list(TARGETS)
    audio = 0.1 * np.random.default_rng(1).standard_normal((2, 20000)).astype(np.float32)
    torch.testing.assert_close(separate(dest, audio), separate(folder, audio), atol=0, rtol=0)


def test_convert_refuses_to_overwrite(tmp_path):
    folder = write_umx_folder(tmp_path / "umx", tiny_states())
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    assert main(["convert", str(folder), str(dest)]) == 1
    assert main(["convert", str(folder), str(dest), "--force"]) == 1  # not a model folder
    assert (dest / "notes.txt").read_text() == "mine"
    assert main(["convert", str(folder), str(folder), "--force"]) == 1  # the source itself
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}.h5" for t in TARGETS)
    model_dir = tmp_path / "model"
    assert main(["convert", str(folder), str(model_dir)]) == 0
    assert main(["convert", str(folder), str(model_dir)]) == 1
    assert main(["convert", str(folder), str(model_dir), "--force"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def served(tmp_path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (no network access)."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _register(monkeypatch, name: str, url: str, filename: str, fmt: str) -> None:
    bundle = registry.ModelBundle(
        name=name,
        config=TINY,
        files=(registry.WeightFile("*", url, "", filename),),
        licence="test",
        description="test bundle",
        fmt=fmt,
    )
    monkeypatch.setitem(registry.BUNDLES, name, bundle)


def test_registry_downloads_a_zip_once_and_records_its_hash(tmp_path, served, monkeypatch):
    root, base = served
    cache = tmp_path / "cache"
    monkeypatch.setenv("UNMIX_HOME", str(cache))
    folder = write_umx_folder(tmp_path / "umx", tiny_states())
    with zipfile.ZipFile(root / "umx.zip", "w") as zf:
        for path in folder.iterdir():
            zf.write(path, path.name)
    _register(monkeypatch, "test-nnabla", f"{base}/umx.zip", "umx.zip", "nnabla-zip")
    config, model = load_model("test-nnabla", progress=False)
    assert model.targets == TARGETS and config.n_hop == TINY.n_hop
    recorded = json.loads((cache / "test-nnabla" / "sha256-first-use.json").read_text())
    assert recorded["umx.zip"] == hashlib.sha256((root / "umx.zip").read_bytes()).hexdigest()
    (root / "umx.zip").unlink()  # served no more: the cached copy is used
    load_model("test-nnabla", progress=False)


def _hostile_zip(path: Path, victim: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("vocals.h5", b"x")
        zf.writestr("../../../evil.txt", b"owned")
        zf.writestr(str(victim), b"owned")
    return path


def _files_outside(root: Path, *allowed: Path) -> list[Path]:
    return [
        p for p in root.rglob("*") if p.is_file() and not any(p.is_relative_to(a) for a in allowed)
    ]


def test_hostile_zips_are_refused_and_nothing_escapes(tmp_path, served, monkeypatch):
    root, base = served
    cache = tmp_path / "cache"
    monkeypatch.setenv("UNMIX_HOME", str(cache))
    victim = tmp_path / "victim.txt"
    _hostile_zip(root / "evil.zip", victim)
    _register(monkeypatch, "evil-nnabla", f"{base}/evil.zip", "evil.zip", "nnabla-zip")
    with pytest.raises(UnmixError, match="refusing archive member"):
        load_model("evil-nnabla", progress=False)
    local = _hostile_zip(tmp_path / "local.zip", victim)
    assert main(["separate", str(_wav(tmp_path)), "--model", str(local)]) == 1
    assert not victim.exists()
    assert not list(tmp_path.parent.glob("evil.txt"))
    assert not list(tmp_path.rglob("evil.txt"))
    assert _files_outside(tmp_path, root, cache, local, tmp_path / "song.wav") == []
    extracted = cache / "extracted"
    assert not extracted.exists() or not any(extracted.iterdir())


def test_registered_nnabla_bundles():
    for name, fmt, file in (
        ("umxhq-nnabla", "nnabla-zip", "open-unmix-nnabla/umxhq.zip"),
        ("umx-nnabla", "nnabla-zip", "open-unmix-nnabla/umx.zip"),
        ("xumx", "nnabla-h5", "ai-research-code/x-umx/x-umx.h5"),
    ):
        bundle = registry.get_bundle(name)
        assert bundle.fmt == fmt
        (wf,) = bundle.files
        assert wf.url == f"https://nnabla.org/pretrained-models/{file}"
        assert wf.sha256 == ""  # trust on first use, see docs/nnabla-xumx.md
        assert bundle.notice
    assert registry.get_bundle("xumx").config.arch == "xumx"
    assert registry.get_bundle("x-umx").name == "xumx"


def test_offline_registry_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("UNMIX_HOME", str(tmp_path))
    monkeypatch.setenv("UNMIX_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"x-umx\.h5"):
        load_model("xumx", progress=False)
