"""Writers of NNabla parameter files in the documented layout (``docs/nnabla-xumx.md``),
used by the tests of the NNabla import and of X-UMX to build ``.h5`` files from PyTorch
state dicts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import torch

from unmix.models.umx import OpenUnmix

from .helpers import randomize

#: X-UMX branch order of the NNabla file
XUMX_ORDER = ("bass", "drums", "vocals", "other")


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
