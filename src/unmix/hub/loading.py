"""Where a separator comes from: a registry name, a folder or a file → :class:`Separator`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..config import ModelConfig
from ..device import pick_device
from ..ensemble import Ensemble, Weights, ensemble_parts
from ..errors import UnmixError
from ..export.separator import load_onnx_separator
from ..filtering import WienerSettings
from ..models.architectures import get_architecture
from ..models.contract import SeparationModel
from ..precision import DEFAULT_PRECISION, check_precision
from ..separator import Separator
from .download import cache_dir, fetch
from .folders import CONFIG_FILE, assemble, from_nnabla, read_file, read_folder, unpack_zip
from .nnabla import read_nnabla_file, read_nnabla_folder
from .registry import DEFAULT_MODEL, ModelBundle, get_bundle, list_models
from .weights import save_state_dict

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def load_model(
    source: str | Path = DEFAULT_MODEL, progress: bool = True
) -> tuple[ModelConfig, SeparationModel]:
    """A registry name, a model folder or a model file → ``(config, frozen model)``."""
    path = Path(source)
    if path.is_dir():
        return read_folder(path)
    if path.is_file():
        return read_file(path)
    try:
        bundle = get_bundle(str(source))
    except KeyError:
        raise UnmixError(
            f"unknown model {str(source)!r}: not a folder and not one of {', '.join(list_models())}"
        ) from None
    return load_bundle(bundle, progress)


def load_bundle(bundle: ModelBundle, progress: bool = True) -> tuple[ModelConfig, SeparationModel]:
    """Fetch (or find in the cache / package) and build a registered model."""
    if bundle.notice:
        log.warning("%s", bundle.notice)
    if bundle.packaged:
        return read_folder(PACKAGE_ROOT / bundle.packaged)
    paths = {
        wf.target: fetch(wf.url, cache_dir() / bundle.name / wf.filename, wf.sha256, progress)
        for wf in bundle.files
    }
    if bundle.fmt == "nnabla-zip":
        (path,) = paths.values()
        return from_nnabla(read_nnabla_folder(unpack_zip(path)), base=bundle.config)
    if bundle.fmt == "nnabla-h5":
        (path,) = paths.values()
        return from_nnabla(read_nnabla_file(path), base=bundle.config)
    return bundle.config, assemble(bundle.config, paths, f"model {bundle.name}")


def load_separator(
    model: str | Path = DEFAULT_MODEL,
    targets: Sequence[str] | None = None,
    wiener: WienerSettings | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    shifts: int = 1,
    weights: Weights | None = None,
    precision: str = DEFAULT_PRECISION,
) -> Separator:
    """Load a model and wrap it in a ready-to-use, frozen :class:`Separator`.

    Args:
        model: registry name (``unmix models`` lists them), model folder or file, an
            ``.onnx`` graph from ``unmix export`` (run by onnxruntime), or an ensemble of
            these joined by ``+`` (``umx-preview+umx-rt-preview``: an
            :class:`~unmix.ensemble.Ensemble`, the members' stems averaged).
        targets: targets to keep, in this order (Default: all). For best quality keep all
            targets: the Wiener stage couples them.
        wiener: the Wiener post-filter options (Default: :class:`WienerSettings`()).
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``None``/``"auto"`` for the best one.
        progress: show download progress.
        shifts: average this many time-shifted copies (:mod:`unmix.shifts`; Default: 1).
        weights: an ensemble's weights per target, see :class:`~unmix.ensemble.Ensemble`.
        precision: ``fp32``, ``bf16`` (CPUs with AVX-512 BF16 or AMX, CUDA) or ``fp16``
            (CUDA): what the networks run in (:mod:`unmix.precision`; Default: fp32).

    Returns:
        a :class:`Separator` in evaluation mode on ``device``.
    """
    parts = ensemble_parts(model)
    if len(parts) == 1 and weights is not None:
        raise UnmixError(f"ensemble weights need an ensemble (models joined by +), got {model}")
    if len(parts) > 1:
        members = [
            load_separator(p, targets, wiener, device, progress, precision=precision) for p in parts
        ]
        return Ensemble(members, weights, shifts, names=parts).freeze()
    if Path(model).suffix.lower() == ".onnx":  # a graph from `unmix export`: settings baked in
        if shifts != 1:
            raise UnmixError(f"{model}: --shifts needs a torch model, not an exported graph")
        return load_onnx_separator(model, targets, wiener, device, precision)
    where = pick_device(device)
    checked = check_precision(precision, where)  # before any download
    config, net = load_model(model, progress)
    if targets:
        net = net.select_targets(targets)
        config = config.with_(targets=net.targets)
    separator = Separator(net, config, wiener or WienerSettings(), shifts, checked)
    return separator.freeze().to(where)


def save_model(
    folder: str | Path,
    config: ModelConfig,
    model: SeparationModel,
    files: Sequence[str] | None = None,
) -> Path:
    """Write ``config.json`` and the weight files of ``config``'s architecture.

    Args:
        folder: model folder (created if needed).
        config: the model's configuration.
        model: the model built for ``config``.
        files: write only these weight-file stems (Default: all); training saves one
            unit at a time.

    Returns:
        ``folder``.
    """
    layout = get_architecture(config.arch).weight_files(config)
    unknown = sorted(set(files or ()) - set(layout))
    if unknown:
        raise ValueError(f"no weight files {unknown} in a {config.arch} model: {list(layout)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, submodule in layout.items():
        if files is None or stem in files:
            state = model.get_submodule(submodule).state_dict()
            save_state_dict(state, folder / f"{stem}.safetensors")
    config.save(folder / CONFIG_FILE)
    return folder
