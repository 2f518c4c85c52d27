"""A writer of NNabla ``.h5`` parameter files, written from the documented layout
(docs: /work/shared/reference/nnabla-and-xumx.md §3, §8.4) independently of
``unmix.nnabla``, plus checks that what it writes has the documented names, shapes and
sizes. The mapping tests (test_nnabla.py, test_xumx.py) use it to produce files from known
PyTorch weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from unmix.config import CONFIGS
from unmix.models.umx import OpenUnmix

from .helpers import randomize

#: X-UMX branch order of the NNabla file
XUMX_ORDER = ("bass", "drums", "vocals", "other")


pytestmark = pytest.mark.usefixtures("one_thread")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _bn(state: Mapping[str, torch.Tensor], bn: str) -> list[tuple[str, np.ndarray]]:
    """NNabla stores BN parameters as (1, 1, features): beta, gamma, mean, var."""
    order = (
        ("beta", "bias"),
        ("gamma", "weight"),
        ("mean", "running_mean"),
        ("var", "running_var"),
    )
    return [(nn_name, _np(state[f"{bn}.{pt}"]).reshape(1, 1, -1)) for nn_name, pt in order]


def _gates(weight: torch.Tensor, hidden: int) -> np.ndarray:
    """(4H, X) gate-major rows -> (4, H, X)."""
    return _np(weight).reshape(4, hidden, -1)


def _lstm(state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Pack nn.LSTM parameters as NNabla does: [ih | hh] per gate, one summed bias."""
    layers = len([k for k in state if k.startswith("lstm.weight_ih_l") and "reverse" not in k])
    directions = ["", "_reverse"] if "lstm.weight_ih_l0_reverse" in state else [""]
    hidden = state["lstm.weight_hh_l0"].shape[1]
    per_layer_w, per_layer_b = [], []
    for layer in range(layers):
        ws, bs = [], []
        for d in directions:
            ih = _gates(state[f"lstm.weight_ih_l{layer}{d}"], hidden)
            hh = _gates(state[f"lstm.weight_hh_l{layer}{d}"], hidden)
            ws.append(np.concatenate([ih, hh], axis=-1))
            bias = state[f"lstm.bias_ih_l{layer}{d}"] + state[f"lstm.bias_hh_l{layer}{d}"]
            bs.append(_gates(bias[:, None], hidden)[..., 0])
        per_layer_w.append(np.stack(ws))
        per_layer_b.append(np.stack(bs))
    out = {"weight_l0": per_layer_w[0], "bias": np.stack(per_layer_b)}
    if layers > 1:
        out["weight"] = np.stack(per_layer_w[1:])
    return out


def umx_arrays(state: Mapping[str, torch.Tensor]) -> list[tuple[str, np.ndarray]]:
    """The arrays of one UMX target file, in NNabla's save (``index``) order."""
    arrays = [
        (n, _np(state[n])) for n in ("input_mean", "input_scale", "output_scale", "output_mean")
    ]
    arrays.append(("fc1/affine/W", _np(state["fc1.weight"]).T))
    arrays += [(f"fc1/bn/{n}", a) for n, a in _bn(state, "bn1")]
    lstm = _lstm(state)
    arrays.append(("lstm/lstm/weight_l0", lstm["weight_l0"]))
    if "weight" in lstm:
        arrays.append(("lstm/lstm/weight", lstm["weight"]))
    arrays.append(("lstm/lstm/bias", lstm["bias"]))
    arrays.append(("fc2/affine/W", _np(state["fc2.weight"]).T))
    arrays += [(f"fc2/bn/{n}", a) for n, a in _bn(state, "bn2")]
    arrays.append(("fc3/affine/W", _np(state["fc3.weight"]).T))
    arrays += [(f"fc3/bn/{n}", a) for n, a in _bn(state, "bn3")]
    return arrays


def xumx_arrays(states: Mapping[str, Mapping[str, torch.Tensor]]) -> list[tuple[str, np.ndarray]]:
    """The arrays of ``x-umx.h5``: every branch's names with a ``_<target>`` suffix."""
    arrays = []
    for target in XUMX_ORDER:
        for name, array in umx_arrays(states[target]):
            head, sep, rest = name.partition("/")
            arrays.append((f"{head}_{target}{sep}{rest}", array))
    return arrays


def write_h5(path: Path, arrays: list[tuple[str, np.ndarray]]) -> Path:
    """One dataset per parameter, attributes ``need_grad`` and ``index``, as nnabla saves."""
    with h5py.File(path, "w") as fh:
        for index, (name, array) in enumerate(arrays):
            ds = fh.create_dataset(name, data=array)
            ds.attrs["need_grad"] = not name.endswith(("/mean", "/var"))
            ds.attrs["index"] = index
    return path


def random_state(config, seed: int) -> dict[str, torch.Tensor]:
    """A randomised OpenUnmix state dict in which every layer matters.

    Weights are scaled by ``1/sqrt(fan_in)`` so that signals keep their size through the
    network (with the small weights of ``helpers.randomize`` the LSTM changes the output by
    less than 1e-6, and a wrong LSTM mapping would go unnoticed); recurrent biases are
    non-zero; BN statistics and output scaling vary.
    """
    net = OpenUnmix.from_config(config)
    randomize(net, seed)
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 1.5 / p.shape[1] ** 0.5)
            elif name.startswith("lstm.bias") or name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.startswith("bn") or name == "output_scale":
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
    return net.state_dict()


def test_umx_layout_matches_documented_table(tmp_path):
    state = random_state(CONFIGS["umxhq"], 0)
    path = write_h5(tmp_path / "vocals.h5", umx_arrays(state))
    with h5py.File(path, "r") as fh:
        found = {}
        fh.visititems(
            lambda n, o: (
                found.__setitem__(n, (o.shape, int(o.attrs["index"])))
                if isinstance(o, h5py.Dataset)
                else None
            )
        )
    assert len(found) == 22
    assert sum(int(np.prod(s)) for s, _ in found.values()) == 8_897_448
    by_index = [n for n, _ in sorted(found.items(), key=lambda kv: kv[1][1])]
    assert by_index[:5] == [
        "input_mean",
        "input_scale",
        "output_scale",
        "output_mean",
        "fc1/affine/W",
    ]
    assert found["fc1/affine/W"][0] == (2974, 512)
    assert found["fc1/bn/gamma"][0] == (1, 1, 512)
    assert found["lstm/lstm/weight_l0"][0] == (2, 4, 256, 768)
    assert found["lstm/lstm/weight"][0] == (2, 2, 4, 256, 768)
    assert found["lstm/lstm/bias"][0] == (3, 2, 4, 256)
    assert found["fc2/affine/W"][0] == (1024, 512)
    assert found["fc3/affine/W"][0] == (512, 4098)
    assert found["fc3/bn/var"][0] == (1, 1, 4098)
    # PyTorch state minus 3 num_batches_tracked and minus the 6 bias_hh vectors
    torch_values = sum(v.numel() for k, v in state.items() if "num_batches" not in k)
    assert torch_values - 6 * 1024 == 8_897_448


def test_writer_packs_lstm_gates_input_then_recurrent():
    config = CONFIGS["umxhq"].with_(hidden_size=8, max_bin=5, n_fft=16, n_hop=4, nb_layers=2)
    state = random_state(config, 1)
    arrays = dict(umx_arrays(state))
    w0 = arrays["lstm/lstm/weight_l0"]  # (D, 4, H, I + H)
    assert w0.shape == (2, 4, 4, 12)
    # gate g (index 2), unit 1 of the backward direction: row 2*4 + 1 of the PyTorch matrices
    np.testing.assert_array_equal(w0[1, 2, 1, :8], state["lstm.weight_ih_l0_reverse"][9].numpy())
    np.testing.assert_array_equal(w0[1, 2, 1, 8:], state["lstm.weight_hh_l0_reverse"][9].numpy())
    bias = state["lstm.bias_ih_l1"][5] + state["lstm.bias_hh_l1"][5]
    np.testing.assert_allclose(arrays["lstm/lstm/bias"][1, 0, 1, 1], bias.item())


def test_xumx_layout_has_88_arrays():
    states = {t: random_state(CONFIGS["umx"], k) for k, t in enumerate(XUMX_ORDER)}
    arrays = xumx_arrays(states)
    assert len(arrays) == 88
    assert sum(a.size for _, a in arrays) == 35_589_792
    names = [n for n, _ in arrays]
    assert names[:5] == [
        "input_mean_bass",
        "input_scale_bass",
        "output_scale_bass",
        "output_mean_bass",
        "fc1_bass/affine/W",
    ]
    assert "lstm_other/lstm/weight" in names and "fc3_vocals/bn/var" in names
