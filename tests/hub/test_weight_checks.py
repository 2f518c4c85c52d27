"""Weight tensors are checked when loaded (issue 20, items 5, 10 and 13): finite floats
only, plain dense CPU tensors only; every refusal is one line naming the tensor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.errors import WeightsError
from unmix.hub.loading import load_model, save_model
from unmix.hub.weights import load_into, read_state_dict
from unmix.models.umx import UMX, OpenUnmix

TINY = ModelConfig(targets=("vocals", "drums"), n_fft=256, n_hop=64, hidden_size=16, max_bin=80)


def _folder(tmp_path, edit=None, suffix=".safetensors"):
    folder = tmp_path / "model"
    model = UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets})
    save_model(folder, TINY, model)
    if edit is not None:
        state = dict(model.branch("drums").state_dict())
        edit(state)
        (folder / "drums.safetensors").unlink()
        if suffix == ".safetensors":
            save_file({k: v.contiguous() for k, v in state.items()}, folder / "drums.safetensors")
        else:
            torch.save(state, folder / "drums.pth")
    return folder


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad, suffix):
    def poison(state):
        state["fc2.weight"] = state["fc2.weight"].clone()
        state["fc2.weight"][3, 1] = bad

    folder = _folder(tmp_path, poison, suffix)
    with pytest.raises(WeightsError, match=r"'fc2.weight' holds NaN or infinite values") as err:
        load_model(folder)
    assert "drums" in _one_line(err)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.int32, torch.complex64])
def test_integer_bool_and_complex_weights_are_refused(tmp_path, dtype):
    def retype(state):
        state["fc1.weight"] = state["fc1.weight"].to(dtype)

    with pytest.raises(WeightsError, match=r"'fc1.weight' has the type") as err:
        load_model(_folder(tmp_path, retype))
    assert "expected a floating type" in _one_line(err)


def test_half_precision_weights_still_load():
    net = OpenUnmix.from_config(TINY)
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    load_into(OpenUnmix.from_config(TINY), state, "half")


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: torch.eye(80 * 2, 16).to_sparse(), "sparse_coo tensor"),
        (lambda: torch.eye(16, 160).to_sparse_csr(), "sparse_csr tensor"),
        (lambda: torch.empty(16, 160, device="meta"), "meta tensor"),
        (
            lambda: torch.quantize_per_tensor(torch.rand(16, 160), 0.1, 0, torch.qint8),
            "quantized tensor",
        ),
    ],
)
@pytest.mark.filterwarnings(
    "ignore:Sparse CSR tensor support is in beta", "ignore:torch.quantize_per_tensor"
)
def test_sparse_meta_and_quantized_tensors_in_a_pth_are_refused(tmp_path, make, kind):
    path = tmp_path / "vocals.pth"
    state = dict(OpenUnmix.from_config(TINY).state_dict())
    state["fc1.weight"] = make()
    torch.save(state, path)
    with pytest.raises(WeightsError, match=f"'fc1.weight' is a {kind}") as err:
        read_state_dict(path)
    _one_line(err)


def test_cli_refuses_a_nan_weight_in_one_line_and_writes_nothing(tmp_path, capsys):
    def poison(state):
        state["output_mean"] = torch.full_like(state["output_mean"], math.nan)

    folder = _folder(tmp_path, poison)
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros((2205, 2), np.float32), 44100)
    out = tmp_path / "out"
    assert main(["separate", str(wav), "--model", str(folder), "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "'output_mean' holds NaN" in err and "\n" not in err and "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*.wav"))
