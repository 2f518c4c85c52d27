"""Build a :class:`~unmix.separator.Separator` from a registry name or a local folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .archive import ArchiveError, extract_zip
from .config import CONFIGS, ModelConfig
from .download import cache_dir, fetch, sha256_of
from .errors import UnmixError, WeightsError
from .model import OpenUnmix
from .nnabla import NNablaWeights, h5_files, read_nnabla_file, read_nnabla_folder
from .registry import DEFAULT_MODEL, ModelBundle, get_bundle, list_models
from .separator import Separator
from .weights import WEIGHT_SUFFIXES, load_into, read_state_dict, save_state_dict, strip_legacy
from .xumx import XUMX, TargetSubset

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
#: weights file of an X-UMX model folder (``config.json`` with ``"arch": "xumx"``)
XUMX_FILE = "xumx.safetensors"
TARGET_ORDER = ("vocals", "drums", "bass", "other", "speech", "noise")


def infer_config(
    states: Mapping[str, Mapping[str, Tensor]],
    base: ModelConfig | None = None,
    sample_rate: int | None = None,
    n_hop: int | None = None,
) -> ModelConfig:
    """Derive a UMX config from the shapes of per-target state dicts.

    ``n_fft``, ``nb_channels``, ``hidden_size``, ``max_bin``, ``nb_layers`` and
    ``unidirectional`` follow from the shapes; ``sample_rate`` and ``n_hop`` come from the
    arguments, ``base``, or default to 44100 and ``n_fft // 4``.
    """
    targets = tuple(states)
    first_raw = next(iter(states.values()))
    first = strip_legacy(first_raw)
    try:
        nb_bins = first["output_mean"].shape[0]
        max_bin = first["input_mean"].shape[0]
        hidden, fc1_in = first["fc1.weight"].shape
    except KeyError as exc:
        raise WeightsError(f"not an Open-Unmix state dict: key {exc} is missing") from exc
    n_fft = 2 * (nb_bins - 1)
    layers = sum(1 for k in first if k.startswith("lstm.weight_ih_l") and "reverse" not in k)
    unidirectional = not any(k.endswith("_reverse") for k in first)
    nb_channels = int(fc1_in // max_bin)
    if base is None:
        # a released configuration with these shapes tells the rate and hop (umxse: 16 kHz, 512)
        base = next(
            (
                c
                for c in CONFIGS.values()
                if (c.n_fft, c.nb_channels, c.hidden_size, c.input_bins)
                == (n_fft, nb_channels, hidden, max_bin)
            ),
            None,
        )
    legacy_rate = first_raw.get("sample_rate")
    rate = (
        sample_rate
        or (base.sample_rate if base else None)
        or (
            int(legacy_rate.item())
            if isinstance(legacy_rate, Tensor) and legacy_rate.numel() == 1
            else 44100
        )
    )
    hop = n_hop or (base.n_hop if base and base.n_fft == n_fft else n_fft // 4)
    return ModelConfig(
        targets=targets,
        sample_rate=int(rate),
        n_fft=int(n_fft),
        n_hop=int(hop),
        nb_channels=nb_channels,
        hidden_size=int(hidden),
        nb_layers=layers,
        max_bin=int(max_bin),
        unidirectional=unidirectional,
    )


def build_models(
    config: ModelConfig, states: Mapping[str, Mapping[str, Tensor]], source: str
) -> dict[str, nn.Module]:
    """One frozen :class:`OpenUnmix` per target, filled strictly from ``states``."""
    models: dict[str, nn.Module] = {}
    for target in config.targets:
        net = OpenUnmix.from_config(config)
        load_into(net, states[target], f"{source} ({target})")
        models[target] = net.freeze()
    return models


def _sorted_targets(names: Sequence[str]) -> list[str]:
    known = [t for t in TARGET_ORDER if t in names]
    return known + sorted(set(names) - set(known))


def _read_folder_json(folder: Path) -> dict[str, Any]:
    """Our ``config.json`` or upstream's ``separator.json`` (``nfft``/``nhop``/...)."""
    for name in (CONFIG_FILE, "separator.json"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise UnmixError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
            if not isinstance(data, dict):
                raise UnmixError(f"{path} must hold a JSON object")
            return {"__file__": name, **data}
    return {}


def load_folder(folder: Path) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """Load a model folder: ``<target>.safetensors`` or ``<target>.pth`` per target, plus an
    optional ``config.json`` (ours) or ``separator.json`` (upstream).

    Also loads X-UMX folders (``config.json`` with ``"arch": "xumx"`` + ``xumx.safetensors``,
    returned as ``{"xumx": model}``) and NNabla folders (``<target>.h5`` files, or one
    ``x-umx.h5``) when the folder has no ``.safetensors``/``.pth`` weights."""
    meta = _read_folder_json(folder)
    if meta.get("__file__") == CONFIG_FILE and meta.get("arch") == "xumx":
        return _load_xumx_folder(folder, meta)
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix in WEIGHT_SUFFIXES and not path.name.startswith("."):
            target = path.stem.split("-")[0].split("_")[0] if path.suffix == ".pth" else path.stem
            if target in files and files[target].suffix == ".safetensors":
                continue
            files[target] = path
    if not files and h5_files(folder):
        return from_nnabla(read_nnabla_folder(folder))
    config: ModelConfig | None = None
    if meta.get("__file__") == CONFIG_FILE:
        meta.pop("__file__")
        config = ModelConfig.from_dict(meta)
        wanted = list(config.targets)
    else:
        wanted = _sorted_targets(list(files))
    missing = [t for t in wanted if t not in files]
    if not wanted or missing:
        raise WeightsError(
            f"model folder {folder} has no weights for {missing or 'any target'}: expected "
            "<target>.safetensors or <target>.pth files (e.g. vocals.pth)"
        )
    states = {t: read_state_dict(files[t]) for t in wanted}
    if config is None:
        rate, hop = meta.get("sample_rate"), meta.get("nhop")
        config = infer_config(
            states, sample_rate=int(rate) if rate else None, n_hop=int(hop) if hop else None
        )
    return config, build_models(config, states, str(folder))


def _load_xumx_folder(
    folder: Path, meta: dict[str, Any]
) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """An X-UMX model folder: ``config.json`` (``"arch": "xumx"``) + ``xumx.safetensors``."""
    meta = {k: v for k, v in meta.items() if k != "__file__"}
    config = ModelConfig.from_dict(meta)
    path = folder / XUMX_FILE
    if not path.is_file():
        raise WeightsError(
            f"model folder {folder} is an X-UMX model (config.json says arch xumx) but has no "
            f"{XUMX_FILE}"
        )
    model = XUMX.from_config(config)
    load_into(model, read_state_dict(path), str(path))
    return config, {"xumx": model.freeze()}


def from_nnabla(
    weights: NNablaWeights, base: ModelConfig | None = None
) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """Build models from NNabla weights (see :mod:`unmix.nnabla`).

    Args:
        weights: per-target (UMX) or per-branch (X-UMX) state dicts.
        base: configuration giving the sample rate and hop (Default: the released
            configuration with the same shapes, else 44100 Hz and ``n_fft // 4``).

    Returns:
        ``(config, {target: OpenUnmix})`` for UMX, ``(config, {"xumx": XUMX})`` for X-UMX;
        targets in the canonical order (vocals, drums, bass, other).
    """
    targets = _sorted_targets(list(weights.states))
    states = {t: weights.states[t] for t in targets}
    config = infer_config(states, base=base)
    if not weights.joint:
        return config, build_models(config, states, weights.source)
    config = config.with_(arch="xumx")
    model = XUMX.from_config(config)
    for target in targets:
        load_into(model.branch(target), states[target], f"{weights.source} (branch {target})")
    return config, {"xumx": model.freeze()}


def unpack_zip(archive: Path) -> Path:
    """Extract a weights zip (safely) into the cache, once; returns the model folder.

    The folder is ``<cache>/extracted/<name>-<sha256 prefix>``: a changed archive gets a new
    folder, and nothing is ever written beside the archive or outside the cache.
    """
    digest = sha256_of(archive)[:16]
    dest = cache_dir() / "extracted" / f"{archive.stem}-{digest}"
    if not dest.is_dir():
        try:
            extract_zip(archive, dest, suffixes=(".h5", ".safetensors", ".pth", ".json"))
        except ArchiveError:
            if not dest.is_dir():  # else another process extracted the same archive
                raise
    return _model_root(dest, archive)


def _model_root(folder: Path, archive: Path) -> Path:
    """``folder`` if it holds weights, else its only sub-folder that does."""

    def has_weights(p: Path) -> bool:
        return any(q.suffix in (".h5", *WEIGHT_SUFFIXES) for q in p.iterdir() if q.is_file())

    if has_weights(folder):
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
    found = [p for p in subs if has_weights(p)]
    if len(found) != 1:
        raise WeightsError(
            f"{archive} holds no single folder of weights files (.h5, .safetensors or .pth)"
        )
    return found[0]


def load_file(path: Path) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """Load a single-file model: an NNabla ``.h5`` or a zip of a model folder."""
    if path.suffix == ".h5":
        return from_nnabla(read_nnabla_file(path))
    if path.suffix == ".zip":
        return load_folder(unpack_zip(path))
    raise UnmixError(
        f"{path} is a file; give the folder that holds one weights file per target "
        "(e.g. vocals.pth, drums.pth, ...), an NNabla .h5 file or a .zip of them"
    )


def load_bundle(
    bundle: ModelBundle, progress: bool = True
) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """Fetch (or find in the cache / package) and build a registered model."""
    if bundle.notice:
        log.warning("%s", bundle.notice)
    if bundle.packaged:
        folder = Path(__file__).parent / bundle.packaged
        return load_folder(folder)
    if bundle.fmt in ("nnabla-zip", "nnabla-h5"):
        return _load_nnabla_bundle(bundle, progress)
    states: dict[str, dict[str, Tensor]] = {}
    for wf in bundle.files:
        path = fetch(wf.url, cache_dir() / bundle.name / wf.filename, wf.sha256, progress)
        states[wf.target] = read_state_dict(path)
    return bundle.config, build_models(bundle.config, states, f"model {bundle.name}")


def _load_nnabla_bundle(
    bundle: ModelBundle, progress: bool
) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """A registered NNabla release: one zip of ``<target>.h5`` files or one ``.h5`` file."""
    (wf,) = bundle.files
    path = fetch(wf.url, cache_dir() / bundle.name / wf.filename, wf.sha256, progress)
    if bundle.fmt == "nnabla-zip":
        return from_nnabla(read_nnabla_folder(unpack_zip(path)), base=bundle.config)
    return from_nnabla(read_nnabla_file(path), base=bundle.config)


def load_models(
    name_or_path: str | Path = DEFAULT_MODEL, progress: bool = True
) -> tuple[ModelConfig, dict[str, nn.Module]]:
    """Resolve a registry name or a local folder/file into a config and target networks."""
    path = Path(name_or_path)
    if path.is_dir():
        return load_folder(path)
    if path.is_file():
        return load_file(path)
    try:
        bundle = get_bundle(str(name_or_path))
    except KeyError:
        raise UnmixError(
            f"unknown model {str(name_or_path)!r}: not a folder and not one of "
            f"{', '.join(list_models())}"
        ) from None
    return load_bundle(bundle, progress)


def load_separator(
    name_or_path: str | Path = DEFAULT_MODEL,
    targets: Sequence[str] | None = None,
    niter: int = 1,
    softmask: bool = False,
    residual: bool = False,
    wiener_win_len: int | None = 300,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Separator:
    """Load a model and wrap it in a ready-to-use, frozen :class:`Separator`.

    Args:
        name_or_path: registry name (``unmix models`` lists them) or a model folder.
        targets: subset of targets to keep, in this order (Default: all). For best quality
            keep all targets: the Wiener stage couples them.
        niter: EM iterations (Default: 1).
        softmask: initialise the Wiener filter with ratio masks.
        residual: add a ``residual`` output.
        wiener_win_len: frames per Wiener window (Default: 300; ``None``: whole input).
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` or ``None`` for the best available.

    Returns:
        a :class:`Separator` in evaluation mode on ``device``.
    """
    config, models = load_models(name_or_path, progress)
    joint: nn.Module | None = None
    if config.arch == "xumx":
        config, joint = select_joint_targets(config, models["xumx"], targets)
    elif targets:
        unknown = [t for t in targets if t not in models]
        if unknown:
            raise UnmixError(f"unknown targets {unknown}; this model has {list(models)}")
        models = {t: models[t] for t in targets}
        config = config.with_(targets=tuple(targets))
    sep = Separator(
        None if joint is not None else models,
        config,
        niter=niter,
        softmask=softmask,
        residual=residual,
        wiener_win_len=wiener_win_len,
        joint_model=joint,
    )
    return sep.freeze().to(pick_device(device))


def select_joint_targets(
    config: ModelConfig, model: nn.Module, targets: Sequence[str] | None
) -> tuple[ModelConfig, nn.Module]:
    """Restrict a joint (X-UMX) model's outputs to ``targets`` (all branches still run)."""
    if not targets:
        return config, model
    unknown = [t for t in targets if t not in config.targets]
    if unknown:
        raise UnmixError(f"unknown targets {unknown}; this model has {list(config.targets)}")
    indices = [config.targets.index(t) for t in targets]
    return config.with_(targets=tuple(targets)), TargetSubset(model, indices)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple MPS, then CPU.

    Raises:
        UnmixError: a device that is asked for but not available.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnmixError(
            "device 'cuda' was asked for but no CUDA GPU is available; use --device cpu"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UnmixError(
            "device 'mps' was asked for but Apple MPS is not available; use --device cpu"
        )
    return dev


def save_model(folder: str | Path, config: ModelConfig, models: Mapping[str, nn.Module]) -> Path:
    """Write ``config.json`` and ``<target>.safetensors`` files into ``folder``.

    An X-UMX model (``config.arch == "xumx"``) is given as ``{"xumx": model}`` and written
    as ``xumx.safetensors``.
    """
    if config.arch == "xumx" and set(models) != {"xumx"}:
        raise ValueError(f"an X-UMX model is saved as {{'xumx': model}}, got keys {list(models)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for target, net in models.items():
        save_state_dict(net.state_dict(), folder / f"{target}.safetensors")
    config.save(folder / CONFIG_FILE)
    return folder
