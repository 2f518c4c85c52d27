"""Import the NNabla releases of UMX, UMXHQ and X-UMX (``.h5`` parameter files).

NNabla saves one HDF5 dataset per parameter, named by its scope path
(``fc1/affine/W``). A UMX file holds one target; the X-UMX file ``x-umx.h5`` holds four
branches whose names carry a ``_<target>`` suffix (``input_mean_bass``,
``fc1_bass/affine/W``). Each target (or branch) maps onto an
:class:`~unmix.models.umx.OpenUnmix` state dict:

* affine weights are stored ``(in, out)``: transposed;
* batch-norm parameters are stored ``(1, 1, features)``: flattened;
* the LSTM is packed as ``weight_l0 (D, 4, H, I + H)``, ``weight (L - 1, D, 4, H, D·H + H)``
  and ``bias (L, D, 4, H)``, gates in PyTorch order (i, f, g, o), input and recurrent
  weights side by side on the last axis, one bias per gate (PyTorch's ``bias_hh`` is 0).

The files are read by :func:`unmix.hub.h5.read_h5` (plain in-file arrays only). Reading needs only ``h5py`` (``pip install unmix[nnabla]``), never nnabla itself. Missing
or mis-shaped arrays are errors naming them; the STFT/ISTFT kernels that old nnabla
versions saved (``conv_r``, ``conv_i``, ``conv_cos``, ``conv_sin``) are skipped silently,
any other unknown array with a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import WeightsError
from .h5 import Arrays, read_h5

log = logging.getLogger(__name__)

#: Per-target vectors stored at the top level of a UMX file.
VECTORS = ("input_mean", "input_scale", "output_scale", "output_mean")
#: Layer scopes of a UMX file (``<layer>/affine/W``, ``<layer>/bn/*``, ``lstm/lstm/*``).
LAYERS = ("fc1", "fc2", "fc3", "lstm")
BN_PARAMS = ("beta", "gamma", "mean", "var")
_BN_TORCH = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}

Label = Callable[[str], str]


def _same(name: str) -> str:
    return name


@dataclass(frozen=True)
class NNablaWeights:
    """Weights read from NNabla files, already in the PyTorch layout.

    Attributes:
        states: one :class:`~unmix.models.umx.OpenUnmix` state dict per target (UMX) or per
            branch (X-UMX), keyed by target name.
        joint: ``True`` for an X-UMX file (bridged branches), ``False`` for UMX.
        source: file or folder the weights came from (for messages).
    """

    states: dict[str, dict[str, Tensor]]
    joint: bool
    source: str


def is_joint(arrays: Arrays, source: str) -> bool:
    """``True`` for X-UMX arrays (suffixed names), ``False`` for one UMX target.

    Raises:
        WeightsError: neither layout.
    """
    if "input_mean" in arrays:
        return False
    if any(name.startswith("input_mean_") for name in arrays):
        return True
    names = ", ".join(sorted(arrays)[:6]) or "no arrays"
    raise WeightsError(
        f"{source} is not an NNabla UMX or X-UMX parameter file: it has no input_mean array "
        f"(found {names})"
    )


def expected_names(nb_layers: int) -> list[str]:
    """Array names of one UMX target file with ``nb_layers`` LSTM layers."""
    names = list(VECTORS)
    for layer in ("fc1", "fc2", "fc3"):
        names.append(f"{layer}/affine/W")
        names.extend(f"{layer}/bn/{p}" for p in BN_PARAMS)
    names += ["lstm/lstm/weight_l0", "lstm/lstm/bias"]
    if nb_layers > 1:
        names.append("lstm/lstm/weight")
    return names


@dataclass(frozen=True)
class _Dims:
    bins: int  # F
    input_bins: int  # B (max_bin)
    channels: int  # C
    hidden: int  # Hd
    layers: int  # L
    directions: int  # D
    units: int  # H per direction


def _dims(arrays: Arrays, source: str) -> _Dims:
    try:
        bias = arrays["lstm/lstm/bias"].shape
        fc1 = arrays["fc1/affine/W"].shape
        dims = _Dims(
            bins=arrays["output_mean"].shape[0],
            input_bins=arrays["input_mean"].shape[0],
            channels=fc1[0] // max(arrays["input_mean"].shape[0], 1),
            hidden=fc1[1],
            layers=bias[0],
            directions=bias[1],
            units=bias[3],
        )
    except IndexError as exc:
        raise WeightsError(
            f"{source}: wrong number of dimensions in input_mean, output_mean, fc1/affine/W "
            f"or lstm/lstm/bias (shapes {_shapes(arrays)}); not an Open-Unmix NNabla file"
        ) from exc
    if dims.directions not in (1, 2) or dims.directions * dims.units != dims.hidden:
        raise WeightsError(
            f"{source}: LSTM of {dims.directions} direction(s) x {dims.units} units does not "
            f"match the hidden size {dims.hidden}; not an Open-Unmix NNabla file"
        )
    return dims


def _shapes(arrays: Arrays) -> str:
    keys = ("input_mean", "output_mean", "fc1/affine/W", "lstm/lstm/bias")
    return ", ".join(f"{k} {tuple(arrays[k].shape)}" for k in keys if k in arrays)


def expected_shapes(d: _Dims) -> dict[str, tuple[int, ...]]:
    """Shape of every array of one UMX target file with dimensions ``d``."""
    widths = {"fc1": d.hidden, "fc2": d.hidden, "fc3": d.channels * d.bins}
    shapes: dict[str, tuple[int, ...]] = {
        "input_mean": (d.input_bins,),
        "input_scale": (d.input_bins,),
        "output_scale": (d.bins,),
        "output_mean": (d.bins,),
        "fc1/affine/W": (d.channels * d.input_bins, d.hidden),
        "fc2/affine/W": (2 * d.hidden, d.hidden),
        "fc3/affine/W": (d.hidden, d.channels * d.bins),
        "lstm/lstm/weight_l0": (d.directions, 4, d.units, d.hidden + d.units),
        "lstm/lstm/bias": (d.layers, d.directions, 4, d.units),
    }
    for layer, width in widths.items():
        shapes.update({f"{layer}/bn/{p}": (1, 1, width) for p in BN_PARAMS})
    if d.layers > 1:
        shapes["lstm/lstm/weight"] = (
            d.layers - 1,
            d.directions,
            4,
            d.units,
            d.directions * d.units + d.units,
        )
    return shapes


def _check_names(arrays: Arrays, source: str, label: Label) -> None:
    biased = sorted(label(n) for n in arrays if n.endswith("/affine/b"))
    if biased:
        raise WeightsError(
            f"{source} has affine biases {biased}: it comes from the early sigsep "
            "open-unmix-nnabla port, whose weights do not fit Open-Unmix; use the Sony releases"
        )
    layers = arrays["lstm/lstm/bias"].shape[0] if "lstm/lstm/bias" in arrays else 1
    missing = [label(n) for n in expected_names(layers) if n not in arrays]
    if missing:
        raise WeightsError(
            f"{source} lacks the arrays {missing}; it is incomplete or not an Open-Unmix "
            "NNabla file"
        )
    unknown = sorted(label(n) for n in set(arrays) - set(expected_names(layers)))
    if unknown:
        log.warning("%s: ignoring unknown arrays %s", source, unknown)


def _check_shapes(arrays: Arrays, dims: _Dims, source: str, label: Label) -> None:
    wrong = [
        f"{label(name)} {tuple(arrays[name].shape)} (expected {shape})"
        for name, shape in expected_shapes(dims).items()
        if tuple(arrays[name].shape) != shape
    ]
    if wrong:
        raise WeightsError(f"{source}: arrays with wrong shapes: {'; '.join(wrong)}")


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _lstm_state(arrays: Arrays, d: _Dims) -> dict[str, Tensor]:
    """PyTorch ``nn.LSTM`` parameters from the packed NNabla arrays."""
    state: dict[str, Tensor] = {}
    gates = 4 * d.units
    for layer in range(d.layers):
        packed = (
            arrays["lstm/lstm/weight_l0"] if layer == 0 else arrays["lstm/lstm/weight"][layer - 1]
        )
        width = d.hidden if layer == 0 else d.directions * d.units
        for direction in range(d.directions):
            suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
            w = packed[direction]  # (4, H, width + H)
            state[f"lstm.weight_ih{suffix}"] = _tensor(w[..., :width].reshape(gates, width))
            state[f"lstm.weight_hh{suffix}"] = _tensor(w[..., width:].reshape(gates, d.units))
            bias = arrays["lstm/lstm/bias"][layer, direction].reshape(gates)
            state[f"lstm.bias_ih{suffix}"] = _tensor(bias)
            state[f"lstm.bias_hh{suffix}"] = torch.zeros(gates)
    return state


def umx_state_dict(arrays: Arrays, source: str, label: Label | None = None) -> dict[str, Tensor]:
    """Map the arrays of one UMX target (unscoped names) to an ``OpenUnmix`` state dict.

    Args:
        arrays: ``{unscoped name: array}`` as in a UMX target file.
        source: file name for messages.
        label: how an unscoped name is spelled in the file, for messages (Default: as is).

    Raises:
        WeightsError: missing arrays, wrong shapes or an incompatible layout, naming them.
    """
    label = label or _same
    _check_names(arrays, source, label)
    dims = _dims(arrays, source)
    _check_shapes(arrays, dims, source, label)
    state = {name: _tensor(arrays[name]) for name in VECTORS}
    for index, layer in enumerate(("fc1", "fc2", "fc3"), start=1):
        state[f"{layer}.weight"] = _tensor(arrays[f"{layer}/affine/W"].T)
        for param, torch_name in _BN_TORCH.items():
            state[f"bn{index}.{torch_name}"] = _tensor(arrays[f"{layer}/bn/{param}"].reshape(-1))
        state[f"bn{index}.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    state.update(_lstm_state(arrays, dims))
    return state


_SUFFIXED = re.compile(r"^(?P<base>{})_(?P<target>[^/]+)$".format("|".join(VECTORS + LAYERS)))


def split_branches(arrays: Arrays, source: str) -> dict[str, Arrays]:
    """Split X-UMX arrays (``fc1_bass/affine/W``) into per-branch unscoped arrays.

    Returns:
        ``{target: {unscoped name: array}}`` in file order of first appearance.
    """
    branches: dict[str, Arrays] = {}
    unknown: list[str] = []
    for name, array in arrays.items():
        head, _, rest = name.partition("/")
        match = _SUFFIXED.match(head)
        if match is None:
            unknown.append(name)
            continue
        local = match["base"] + (f"/{rest}" if rest else "")
        branches.setdefault(match["target"], {})[local] = array
    if unknown:
        log.warning("%s: ignoring unknown arrays %s", source, sorted(unknown))
    return branches


def xumx_state_dicts(arrays: Arrays, source: str) -> dict[str, dict[str, Tensor]]:
    """Map X-UMX arrays to one ``OpenUnmix`` state dict per branch.

    Raises:
        WeightsError: a branch with missing or mis-shaped arrays, naming them with their
            file names (``fc2_bass/bn/var``).
    """
    states: dict[str, dict[str, Tensor]] = {}
    for target, local in split_branches(arrays, source).items():
        states[target] = umx_state_dict(local, source, _branch_label(target))
    if not states:
        raise WeightsError(f"{source} has no X-UMX branches (no input_mean_<target> arrays)")
    return states


def _branch_label(target: str) -> Label:
    """Spell unscoped names as in the X-UMX file (``fc2/bn/var`` → ``fc2_bass/bn/var``)."""

    def label(name: str) -> str:
        head, sep, rest = name.partition("/")
        return f"{head}_{target}{sep}{rest}"

    return label


def read_nnabla_file(path: str | Path) -> NNablaWeights:
    """Read one ``.h5`` file: X-UMX, or a single UMX target named after the file."""
    path = Path(path)
    arrays = read_h5(path)
    if is_joint(arrays, str(path)):
        return NNablaWeights(xumx_state_dicts(arrays, str(path)), True, str(path))
    return NNablaWeights({path.stem: umx_state_dict(arrays, str(path))}, False, str(path))


def h5_files(folder: str | Path) -> list[Path]:
    """The visible ``*.h5`` files of ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).glob("*.h5") if not p.name.startswith("."))


def read_nnabla_folder(folder: str | Path) -> NNablaWeights:
    """Read a folder of ``<target>.h5`` UMX files (an extracted NNabla zip) or one X-UMX file.

    Raises:
        WeightsError: no ``.h5`` files, or an X-UMX file mixed with other files.
    """
    folder = Path(folder)
    files = h5_files(folder)
    if not files:
        raise WeightsError(f"{folder} holds no .h5 files (expected vocals.h5, drums.h5, ...)")
    if len(files) == 1:
        return read_nnabla_file(files[0])
    states: dict[str, dict[str, Tensor]] = {}
    for path in files:
        arrays = read_h5(path)
        if is_joint(arrays, str(path)):
            raise WeightsError(
                f"{path} is an X-UMX file; give it on its own (--model {path}), not a folder "
                "that also holds other .h5 files"
            )
        states[path.stem] = umx_state_dict(arrays, str(path))
    return NNablaWeights(states, False, str(folder))
