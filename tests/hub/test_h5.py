"""Hostile NNabla ``.h5`` files: nothing outside the file is read, sizes are bounded by the
file, and every refusal is one ``WeightsError`` raised before any data is read."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.errors import WeightsError
from unmix.hub.h5 import read_h5

from ..nnabla_files import random_state, umx_arrays, write_h5

TINY = ModelConfig(n_fft=512, n_hop=128, hidden_size=16, nb_layers=2, max_bin=120)
SECRET = b"root:x:0:0:secret-bytes-that-must-never-leave-this-file\n" * 64


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_bytes(SECRET)
    return path


def _valid_arrays() -> list[tuple[str, np.ndarray]]:
    return umx_arrays(random_state(TINY, 0))


def _write_with(path: Path, extra) -> Path:
    """A valid UMX target file plus whatever ``extra(fh)`` adds or replaces."""
    write_h5(path, _valid_arrays())
    with h5py.File(path, "a") as fh:
        extra(fh)
    return path


def _external_storage(secret: Path):
    def extra(fh: h5py.File) -> None:
        del fh["input_mean"]
        n = len(SECRET) // 4
        fh.create_dataset("input_mean", shape=(n,), dtype="f4", external=[(str(secret), 0, n * 4)])

    return extra


def test_external_storage_is_refused_before_reading(tmp_path, secret):
    path = _write_with(tmp_path / "vocals.h5", _external_storage(secret))
    with pytest.raises(WeightsError, match="external files") as err:
        read_h5(path)
    assert "\n" not in str(err.value)


def test_convert_of_a_zip_with_external_storage_writes_nothing(tmp_path, secret, capsys):
    h5 = _write_with(tmp_path / "vocals.h5", _external_storage(secret))
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(h5, "vocals.h5")
    dest = tmp_path / "out"
    assert main(["convert", str(archive), str(dest)]) == 1
    assert not dest.exists()
    assert "external files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("external_link", "external link"),
        ("soft_link", "soft link"),
        ("gzip", "compressed or filtered"),
        ("int", "not a float type"),
        ("scalar", "scalar"),
        ("deep", "nested deeper"),
        ("huge", "declares"),
    ],
)
def test_structures_outside_the_rules_are_refused(tmp_path, secret, kind, message):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as fh:
        fh["input_mean"] = np.ones(120, dtype="f4")

    def extra(fh: h5py.File) -> None:
        if kind == "external_link":
            fh["stolen"] = h5py.ExternalLink(str(other), "/input_mean")
        elif kind == "soft_link":
            fh["alias"] = h5py.SoftLink("/input_mean")
        elif kind == "gzip":
            fh.create_dataset("packed", data=np.zeros(64, "f4"), compression="gzip")
        elif kind == "int":
            fh["ints"] = np.arange(8, dtype=np.int8)
        elif kind == "scalar":
            fh["one"] = np.float32(1.0)
        elif kind == "deep":
            fh.create_group("/".join(f"g{k}" for k in range(12)))
        elif kind == "huge":  # 64 GiB declared, nothing allocated: a 2 KB file
            fh.create_dataset("big", shape=(1 << 34,), dtype="f4", chunks=(1 << 20,))

    path = _write_with(tmp_path / "vocals.h5", extra)
    with pytest.raises(WeightsError, match=message) as err:
        read_h5(path)
    assert "\n" not in str(err.value)


def test_virtual_dataset_is_refused(tmp_path, secret):
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as fh:
        fh["data"] = np.ones(16, dtype="f4")
    layout = h5py.VirtualLayout(shape=(16,), dtype="f4")
    layout[:] = h5py.VirtualSource(str(src), "data", shape=(16,))
    path = _write_with(tmp_path / "vocals.h5", lambda fh: fh.create_virtual_dataset("v", layout))
    with pytest.raises(WeightsError, match="virtual dataset"):
        read_h5(path)


def test_a_valid_file_still_reads(tmp_path):
    path = write_h5(tmp_path / "vocals.h5", _valid_arrays())
    arrays = read_h5(path)
    assert set(arrays) == {name for name, _ in _valid_arrays()}


DTYPES = st.sampled_from(["f2", "f4", "f8", "i4", "u1", "S4", "c8"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(
        st.tuples(
            st.lists(st.integers(0, 1 << 24), min_size=0, max_size=6),
            DTYPES,
            st.sampled_from([None, "chunked", "gzip", "shuffle", "fletcher32"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzzed_structures_stay_within_the_file(tmp_path, specs):
    """Random declarations (shapes up to 2^24 per axis, dtypes, filters): either a clean
    refusal or arrays that together are no bigger than the file."""
    path = tmp_path / "fuzz.h5"
    with h5py.File(path, "w") as fh:
        for k, (shape, dtype, storage) in enumerate(specs):
            kwargs: dict = {}
            if storage and 0 not in shape and shape:
                kwargs["chunks"] = tuple(min(s, 64) for s in shape)
                if storage != "chunked":
                    kwargs[storage] = True if storage != "gzip" else None
                    if storage == "gzip":
                        kwargs = {"chunks": kwargs["chunks"], "compression": "gzip"}
            try:
                fh.create_dataset(f"d{k}", shape=tuple(shape), dtype=dtype, **kwargs)
            except (ValueError, TypeError, OSError):
                continue
    try:
        arrays = read_h5(path)
    except WeightsError as exc:
        assert "\n" not in str(exc)
        return
    assert sum(a.nbytes for a in arrays.values()) <= path.stat().st_size
