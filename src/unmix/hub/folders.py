"""One reader per model format, each giving ``(config, model)``.

* an unmix model folder: ``config.json`` plus the weight files its architecture names
  (``<target>.safetensors`` for UMX, one joint file for X-UMX; ``.pth`` is accepted too);
* an upstream Open-Unmix folder: ``<target>.pth`` (or ``.safetensors``) files and an
  optional ``separator.json``; the configuration is inferred from the shapes;
* NNabla releases: a folder of ``<target>.h5`` files or one joint ``.h5`` file;
* a ``.zip`` of any of these folders (extracted safely into the cache, once).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from ..config import ModelConfig, canonical_order, read_json_object
from ..errors import UnmixError, WeightsError
from ..models.architectures import get_architecture, nnabla_architecture
from ..models.contract import SeparationModel
from .archive import ArchiveError, extract_zip
from .download import cache_dir, sha256_of
from .infer import infer_config
from .nnabla import NNablaWeights, h5_files, read_nnabla_file, read_nnabla_folder
from .weights import WEIGHT_SUFFIXES, load_into, read_state_dict

CONFIG_FILE = "config.json"
UPSTREAM_FILE = "separator.json"
#: the fewest bytes a weight file can spend on one parameter (float16)
BYTES_PER_PARAMETER = 2

Loaded = tuple[ModelConfig, SeparationModel]


def assemble(
    config: ModelConfig, weights: Mapping[str, Path | Mapping[str, Tensor]], source: str
) -> SeparationModel:
    """Build ``config``'s model and fill it strictly, one weight file per stem.

    Args:
        config: the configuration (its ``arch`` names the weight files).
        weights: ``{file stem: path or state dict}``; must hold every stem of the
            architecture (:attr:`Architecture.weight_files`).
        source: how to name the model in messages.

    Returns:
        the frozen model.
    """
    arch = get_architecture(config.arch)
    layout = arch.weight_files(config)
    missing = [stem for stem in layout if stem not in weights]
    if missing:
        raise WeightsError(
            f"{source} has no {', '.join(f'{s}.safetensors' for s in missing)} (nor .pth), "
            f"which a {arch.label} model with targets {', '.join(config.targets)} needs"
        )
    _check_file_sizes(config, [w for w in weights.values() if isinstance(w, Path)], source)
    model = arch.build(config)
    for stem, submodule in layout.items():
        given = weights[stem]
        state = read_state_dict(given) if isinstance(given, Path) else given
        name = str(given) if isinstance(given, Path) else f"{source} ({stem})"
        load_into(model.get_submodule(submodule), state, name)
    return model.freeze()


def _check_file_sizes(config: ModelConfig, paths: list[Path], source: str) -> None:
    """Refuse a configuration whose model is far larger than its weight files, before
    building it (a tiny file must not make unmix allocate gigabytes)."""
    if not paths:
        return
    held = sum(p.stat().st_size for p in paths if p.is_file())
    needed = config.parameter_count() * BYTES_PER_PARAMETER
    if held < needed:
        raise WeightsError(
            f"{source}: its configuration needs about {config.parameter_count():,} "
            f"parameters, but the weight files hold only {held:,} bytes; the config does "
            "not belong to these weights"
        )


def weight_files(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of a folder's weight files; ``.safetensors`` wins over ``.pth``.

    Upstream ``.pth`` names carry a hash (``vocals-b62c91ce.pth``): the stem is the part
    before the first ``-`` or ``_``.
    """
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix in WEIGHT_SUFFIXES and not path.name.startswith("."):
            stem = path.stem.split("-")[0].split("_")[0] if path.suffix == ".pth" else path.stem
            if stem in files and files[stem].suffix == ".safetensors":
                continue
            files[stem] = path
    return files


def _positive_int(data: Mapping[str, Any], key: str, path: Path) -> int | None:
    """``data[key]`` as an int when it is a positive whole number; ``None`` when absent."""
    value = data.get(key)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0 or value != int(value):
        raise UnmixError(f"{path}: {key!r} must be a positive whole number, got {value!r}")
    return int(value)


def read_unmix_folder(folder: Path) -> Loaded:
    """An unmix model folder (``config.json`` + weight files)."""
    config = ModelConfig.load(folder / CONFIG_FILE)
    return config, assemble(config, weight_files(folder), f"model folder {folder}")


def read_upstream_folder(folder: Path) -> Loaded:
    """An Open-Unmix folder: per-target weight files, optional ``separator.json``."""
    meta_path = folder / UPSTREAM_FILE
    meta = read_json_object(meta_path) if meta_path.is_file() else {}
    files = weight_files(folder)
    if not files:
        raise WeightsError(
            f"model folder {folder} has no weights: expected <target>.safetensors or "
            "<target>.pth files (e.g. vocals.pth), NNabla .h5 files or a config.json"
        )
    targets = canonical_order(files)
    states = {t: read_state_dict(files[t]) for t in targets}
    config = infer_config(
        states,
        sample_rate=_positive_int(meta, "sample_rate", meta_path),
        n_hop=_positive_int(meta, "nhop", meta_path),
    )
    return config, assemble(config, states, str(folder))


def from_nnabla(weights: NNablaWeights, base: ModelConfig | None = None) -> Loaded:
    """A model from NNabla weights (see :mod:`unmix.hub.nnabla`).

    Args:
        weights: per-target (UMX) or per-branch (joint) state dicts.
        base: configuration giving the sample rate and hop (Default: the released
            configuration with the same shapes, else 44100 Hz and ``n_fft // 4``).

    Returns:
        ``(config, model)``, targets in the canonical order (vocals, drums, bass, other).
    """
    targets = canonical_order(weights.states)
    states = {t: weights.states[t] for t in targets}
    arch = nnabla_architecture(weights.joint)
    config = infer_config(states, base=base).with_(arch=arch.name)
    model = arch.build(config)
    for target in targets:
        load_into(
            model.get_submodule(f"branches.{target}"),
            states[target],
            f"{weights.source} ({target})",
        )
    return config, model.freeze()


def read_folder(folder: Path) -> Loaded:
    """Any model folder: ours, upstream's, or NNabla ``.h5`` files."""
    if (folder / CONFIG_FILE).is_file():
        return read_unmix_folder(folder)
    if not weight_files(folder) and h5_files(folder):
        return from_nnabla(read_nnabla_folder(folder))
    return read_upstream_folder(folder)


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


def read_file(path: Path) -> Loaded:
    """A single-file model: an NNabla ``.h5`` or a zip of a model folder."""
    if path.suffix == ".h5":
        return from_nnabla(read_nnabla_file(path))
    if path.suffix == ".zip":
        return read_folder(unpack_zip(path))
    raise UnmixError(
        f"{path} is a file; give the folder that holds one weights file per target "
        "(e.g. vocals.pth, drums.pth, ...), an NNabla .h5 file or a .zip of them"
    )
