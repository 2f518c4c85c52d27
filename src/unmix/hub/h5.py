"""Read HDF5 parameter files safely: plain in-file float arrays only, sizes bounded.

HDF5 can reach outside the file (external links, external storage, virtual datasets) and
expand a tiny file into gigabytes (filters, huge declarations). :func:`read_h5` checks the
whole file before reading any data and accepts only hard-linked, unfiltered, contiguous,
chunked or compact datasets of floats whose declared sizes fit in the file itself.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import UnmixError, WeightsError

Arrays = dict[str, np.ndarray]

#: STFT/ISTFT kernels saved by nnabla <= 1.16; not weights of the network (never read).
KERNELS = frozenset({"conv_r", "conv_i", "conv_cos", "conv_sin"})


def _h5py() -> ModuleType:
    try:
        return importlib.import_module("h5py")
    except ImportError as exc:  # pragma: no cover - the test suite installs h5py
        raise UnmixError(
            "reading NNabla .h5 weights needs h5py: pip install 'unmix[nnabla]'"
        ) from exc


def _is_kernel(name: str) -> bool:
    return any(part in KERNELS for part in name.split("/"))


#: Deepest group nesting an NNabla file needs is 3 (``fc1_bass/affine/W``).
MAX_DEPTH = 8
#: Most objects (groups and datasets) a parameter file may hold (X-UMX has 88 datasets).
MAX_OBJECTS = 4096
#: Most dimensions of one array (the packed LSTM weights have 5).
MAX_NDIM = 5


def _refuse(source: str, name: str, why: str) -> WeightsError:
    return WeightsError(
        f"{source}: {name!r} {why}; NNabla parameter files hold only plain in-file float "
        "arrays, so this file is refused unread (re-export it with nnabla's save_parameters)"
    )


def _in_file_datasets(fh: Any, h5py: ModuleType, source: str) -> list[tuple[str, Any]]:
    """Every dataset of ``fh`` reached through hard links, after checking the link kinds.

    Soft and external links, too deep nesting and too many objects are refused: nothing
    outside the file is ever opened.
    """
    found: list[tuple[str, Any]] = []
    count = 0

    def walk(group: Any, prefix: str, depth: int) -> None:
        nonlocal count
        if depth > MAX_DEPTH:
            raise _refuse(source, prefix.rstrip("/"), f"is nested deeper than {MAX_DEPTH} groups")
        for key in group:
            name = prefix + key
            count += 1
            if count > MAX_OBJECTS:
                raise _refuse(source, name, f"is beyond the first {MAX_OBJECTS} objects")
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise _refuse(source, name, f"is an external link to {link.filename!r}")
            if not isinstance(link, h5py.HardLink):
                raise _refuse(source, name, "is a soft link")
            obj = group[key]
            if isinstance(obj, h5py.Group):
                walk(obj, name + "/", depth + 1)
            elif isinstance(obj, h5py.Dataset):
                found.append((name, obj))

    walk(fh, "", 0)
    return found


def _check_storage(name: str, ds: Any, h5py: ModuleType, source: str) -> int:
    """Bytes of a dataset whose data lies plainly inside the file; anything else is refused.

    Returns:
        the size of the array once read (bytes).
    """
    if ds.is_virtual:
        raise _refuse(source, name, "is a virtual dataset (its data lives in other files)")
    if ds.external:
        raise _refuse(source, name, f"stores its data in external files {ds.external[:2]}")
    plist = ds.id.get_create_plist()
    layout = plist.get_layout()
    if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED, h5py.h5d.COMPACT):
        raise _refuse(source, name, f"has an unsupported storage layout ({layout})")
    if plist.get_nfilters():
        filters = [
            plist.get_filter(i)[3].decode(errors="replace") for i in range(plist.get_nfilters())
        ]
        raise _refuse(source, name, f"is compressed or filtered ({', '.join(filters)})")
    if ds.dtype.kind != "f" or ds.dtype.itemsize not in (2, 4, 8):
        raise _refuse(source, name, f"has the data type {ds.dtype}, not a float type")
    if ds.shape is None or ds.ndim == 0:
        raise _refuse(source, name, "is a scalar or empty dataset, not an array")
    if ds.ndim > MAX_NDIM:
        raise _refuse(source, name, f"has {ds.ndim} dimensions (at most {MAX_NDIM})")
    return int(np.prod(ds.shape, dtype=np.float64)) * int(ds.dtype.itemsize)


def read_h5(path: str | Path) -> Arrays:
    """All datasets of an NNabla parameter file, keyed by their path.

    The whole file is checked before any data is read: only hard links, and only datasets
    of floats stored plainly in the file (contiguous, chunked or compact, no filters); no
    external links, soft links, external storage or virtual datasets, so a hostile file
    cannot make unmix read another file. The declared sizes of the arrays must fit in the
    file itself, which bounds the memory a tiny file can claim. The STFT/ISTFT kernels
    are not read (they can be 134 MB).

    Raises:
        WeightsError: a missing file, one that is not HDF5, or one that breaks these rules.
    """
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    file_size = path.stat().st_size
    source = str(path)
    try:
        with h5py.File(path, "r") as fh:
            datasets = _in_file_datasets(fh, h5py, source)
            wanted = [(n, ds) for n, ds in datasets if not _is_kernel(n)]
            declared = sum(_check_storage(n, ds, h5py, source) for n, ds in wanted)
            if declared > file_size:
                raise WeightsError(
                    f"{source} declares {declared:,} bytes of arrays but holds only "
                    f"{file_size:,} bytes; it is corrupt or crafted, not an NNabla parameter file"
                )
            return {name: np.asarray(ds[()]) for name, ds in wanted}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise WeightsError(
            f"cannot read {path}: not a valid NNabla .h5 parameter file ({exc})"
        ) from exc
