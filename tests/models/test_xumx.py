"""X-UMX: the bridged forward pass as documented, reduction to UMX with identical branches,
the NNabla ``x-umx.h5`` mapping (same stems as the PyTorch model), model folders, convert
and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unmix import audio as audio_io
from unmix.cli import main
from unmix.config import CONFIGS, ModelConfig
from unmix.errors import UnmixError, WeightsError
from unmix.filtering import WienerSettings
from unmix.hub.folders import read_folder
from unmix.hub.loading import load_model, load_separator, save_model
from unmix.models.xumx import XUMX
from unmix.separator import Separator

from ..nnabla_files import XUMX_ORDER, random_state, umx_arrays, write_h5, xumx_arrays

TARGETS = ("vocals", "drums", "bass", "other")
TINY = ModelConfig(n_fft=512, n_hop=128, hidden_size=16, nb_layers=2, max_bin=120, arch="xumx")


pytestmark = pytest.mark.usefixtures("one_thread")


def random_xumx(config: ModelConfig, seed: int = 0) -> XUMX:
    model = XUMX.from_config(config)
    for k, target in enumerate(config.targets):
        model.branch(target).load_state_dict(random_state(config, seed + k))
    return model.eval()


def documented_forward(model: XUMX, x: torch.Tensor) -> torch.Tensor:
    """X-UMX written out from the description (reference §8.1) with functional ops."""
    X = x.permute(3, 0, 1, 2)  # (N, S, C, F)
    N, S, C, nb_bins = X.shape
    states = {t: model.branch(t).state_dict() for t in model.targets}
    first = states[model.targets[0]]
    B, H = first["input_mean"].shape[0], first["fc1.weight"].shape[0]

    def bn(y, st, name):
        return F.batch_norm(
            y, st[f"{name}.running_mean"], st[f"{name}.running_var"],
            st[f"{name}.weight"], st[f"{name}.bias"], False, 0.0, 1e-5,
        )  # fmt: skip

    h1 = {}
    for t, st in states.items():
        z = (X[..., :B] + st["input_mean"]) * st["input_scale"]
        h1[t] = torch.tanh(bn(z.reshape(N * S, C * B) @ st["fc1.weight"].T, st, "bn1")).reshape(
            N, S, H
        )
    cross1 = sum(h1.values()) / len(h1)
    skips = {}
    for t, st in states.items():
        lstm = nn.LSTM(H, H // 2, num_layers=model.branch(t).lstm.num_layers, bidirectional=True)
        lstm.load_state_dict({k[5:]: v for k, v in st.items() if k.startswith("lstm.")})
        skips[t] = torch.cat([h1[t], lstm.eval()(cross1)[0]], dim=-1)
    cross2 = sum(skips.values()) / len(skips)
    out = []
    for st in states.values():
        y = torch.relu(bn(cross2.reshape(N * S, 2 * H) @ st["fc2.weight"].T, st, "bn2"))
        y = bn(y @ st["fc3.weight"].T, st, "bn3").reshape(N, S, C, nb_bins)
        out.append(torch.relu(y * st["output_scale"] + st["output_mean"]) * X)
    return torch.stack(out, dim=-1).permute(1, 2, 3, 0, 4)


def test_forward_matches_the_documented_bridges():
    model = random_xumx(TINY, 1)
    x = torch.rand(2, 2, TINY.nb_bins, 9)
    with torch.no_grad():
        got = model(x)
        expected = documented_forward(model, x)
    assert got.shape == (2, 2, TINY.nb_bins, 9, 4)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_identical_branches_reduce_to_open_unmix(openunmix):
    """With the same weights in every branch both averages are the identity, so each output
    equals the reference Open-Unmix network."""
    state = random_state(TINY, 7)
    model = XUMX.from_config(TINY)
    for target in TARGETS:
        model.branch(target).load_state_dict(state)
    ref = openunmix.model.OpenUnmix(
        nb_bins=TINY.nb_bins, nb_channels=2, hidden_size=16, nb_layers=2, max_bin=120
    )
    ref.load_state_dict(state)
    x = torch.rand(1, 2, TINY.nb_bins, 6)
    with torch.no_grad():
        got = model.eval()(x)
        expected = ref.eval()(x)
    for j in range(4):
        torch.testing.assert_close(got[..., j], expected, atol=1e-6, rtol=1e-5)


def test_bridges_couple_the_branches():
    """The vocals output depends on the bass encoder and LSTM (bridges), not on the bass
    decoder."""
    model = random_xumx(TINY, 2)
    x = torch.rand(1, 2, TINY.nb_bins, 6)
    model(x)[..., TINY.targets.index("vocals")].sum().backward()
    bass = dict(model.branch("bass").named_parameters())
    coupled = ("input_mean", "input_scale", "fc1.weight", "bn1.weight", "lstm.weight_ih_l1")
    for name in coupled:
        assert bass[name].grad is not None and bass[name].grad.abs().max() > 0, name
    for name in ("fc2.weight", "bn2.bias", "fc3.weight", "bn3.weight", "output_scale"):
        assert bass[name].grad is None or not bass[name].grad.any(), name


@pytest.fixture(scope="module")
def full_xumx(tmp_path_factory) -> tuple[Path, XUMX]:
    """Full-size X-UMX with random weights, written as ``x-umx.h5`` (plus the STFT kernels
    old nnabla versions saved)."""
    config = CONFIGS["umx"].with_(arch="xumx")
    states = {t: random_state(config, 40 + k) for k, t in enumerate(XUMX_ORDER)}
    model = XUMX.from_config(config)
    for target, state in states.items():
        model.branch(target).load_state_dict(state)
    extras = [
        (n, np.ones((4, 1, 8), np.float32)) for n in ("conv_r", "conv_i", "conv_cos", "conv_sin")
    ]
    path = write_h5(tmp_path_factory.mktemp("xumx") / "x-umx.h5", xumx_arrays(states) + extras)
    return path, model.eval()


def test_xumx_h5_gives_the_pytorch_stems(full_xumx, clip):
    path, model = full_xumx
    audio, _ = audio_io.read(clip, duration=2.0)
    x = torch.from_numpy(audio)[None]
    ours = load_separator(path, device="cpu")
    assert ours.config == CONFIGS["umx"].with_(arch="xumx")
    assert ours.output_names == TARGETS
    reference = Separator(model, ours.config).freeze()
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    err = (got - expected).abs().max().item()
    assert err <= 1e-4, f"max abs difference {err:.2e}"
    assert expected.abs().max() > 1e-3


def test_target_subset_is_the_matching_slice(tmp_path):
    """Without EM each stem depends only on its own magnitude, so a subset of targets is the
    matching slice of all targets (the bridges still see all four branches)."""
    states = {t: random_state(TINY, 30 + k) for k, t in enumerate(XUMX_ORDER)}
    path = write_h5(tmp_path / "x-umx.h5", xumx_arrays(states))
    x = 0.1 * torch.randn(1, 2, 20000)
    sub = load_separator(
        path, device="cpu", targets=["bass", "vocals"], wiener=WienerSettings(niter=0)
    )
    full = load_separator(path, device="cpu", wiener=WienerSettings(niter=0))
    assert sub.output_names == ("bass", "vocals")
    with torch.no_grad():
        torch.testing.assert_close(sub(x), full(x)[:, [2, 0]], atol=1e-6, rtol=1e-5)
    with pytest.raises(UnmixError, match="unknown targets"):
        load_separator(path, device="cpu", targets=["piano"])


def test_missing_branch_array_is_named_as_in_the_file(tmp_path):
    states = {t: random_state(TINY, k) for k, t in enumerate(XUMX_ORDER)}
    arrays = xumx_arrays(states)
    missing = [(n, a) for n, a in arrays if n != "fc2_bass/bn/var"]
    with pytest.raises(WeightsError, match=r"lacks the arrays \['fc2_bass/bn/var'\]"):
        load_model(write_h5(tmp_path / "x-umx.h5", missing))
    broken = [(n, a[..., :1, :] if n == "lstm_drums/lstm/weight" else a) for n, a in arrays]
    with pytest.raises(WeightsError, match=r"lstm_drums/lstm/weight \(1, 2, 4, 1, 24\) \(expected"):
        load_model(write_h5(tmp_path / "x-umx2.h5", broken))


def test_mixed_folder_of_xumx_and_umx_files_is_refused(tmp_path):
    states = {t: random_state(TINY, k) for k, t in enumerate(XUMX_ORDER)}
    write_h5(tmp_path / "x-umx.h5", xumx_arrays(states))
    write_h5(tmp_path / "vocals.h5", umx_arrays(states["vocals"]))
    with pytest.raises(WeightsError, match="give it on its own"):
        load_model(tmp_path)


def test_xumx_model_folder_round_trip(tmp_path):
    model = random_xumx(TINY, 3)
    folder = save_model(tmp_path / "m", TINY, model)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "xumx.safetensors"]
    assert json.loads((folder / "config.json").read_text())["arch"] == "xumx"
    config, loaded = read_folder(folder)
    assert config == TINY
    x = torch.rand(1, 2, TINY.nb_bins, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    with pytest.raises(ValueError, match="no weight files"):
        save_model(tmp_path / "bad", TINY, model, files=["vocals"])
    (folder / "xumx.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"has no xumx\.safetensors"):
        read_folder(folder)


def test_convert_and_separate_x_umx_h5(tmp_path, capsys):
    states = {t: random_state(TINY, 10 + k) for k, t in enumerate(XUMX_ORDER)}
    h5 = write_h5(tmp_path / "x-umx.h5", xumx_arrays(states))
    dest = tmp_path / "xumx-model"
    assert main(["convert", str(h5), str(dest)]) == 0
    assert "(X-UMX; targets vocals, drums, bass, other" in capsys.readouterr().out
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "xumx.safetensors"]
    rng = np.random.default_rng(0)
    wav = tmp_path / "mix.wav"
    audio_io.write(wav, (0.1 * rng.standard_normal((2, 22050))).astype(np.float32), 44100)
    for model, out in ((h5, "a"), (dest, "b")):
        args = ["separate", str(wav), "--model", str(model), "--targets", "vocals", "drums"]
        args += ["--filename", "{track}/{stem}.{ext}"]  # the same folder for both models
        assert main([*args, "--out-dir", str(tmp_path / out)]) == 0
    for target in ("vocals", "drums"):
        a, _ = audio_io.read(tmp_path / "a" / "mix" / f"{target}.wav")
        b, _ = audio_io.read(tmp_path / "b" / "mix" / f"{target}.wav")
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "a" / "mix" / "bass.wav").exists()
