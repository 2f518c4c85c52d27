"""``unmix.cpus``: the default thread count equals PyTorch's, found without importing it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unmix.cpus import cpu_counts, current_threads, default_threads

COMPARE = """
import sys
from unmix.cpus import default_threads
threads = default_threads()
assert "torch" not in sys.modules
import torch
print(threads, torch.get_num_threads())
"""


def fake_sysfs(root: Path, topology: list[tuple[int, int]]) -> Path:
    """``root/cpu<N>/topology`` with ``(package, core)`` per logical processor."""
    for n, (package, core) in enumerate(topology):
        folder = root / f"cpu{n}" / "topology"
        folder.mkdir(parents=True)
        (folder / "physical_package_id").write_text(f"{package}\n")
        (folder / "core_id").write_text(f"{core}\n")
    (root / "cpufreq").mkdir()  # not a CPU
    return root


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OMP_NUM_THREADS": "1"},
        {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "3"},
        {"MKL_NUM_THREADS": "64", "OMP_NUM_THREADS": "1"},
        {"OMP_NUM_THREADS": "64"},
        {"OMP_NUM_THREADS": "3", "MKL_DYNAMIC": "FALSE"},
        {"OMP_NUM_THREADS": "0"},
    ],
    ids=["none", "omp", "mkl", "mkl-above-cores", "omp-above-cores", "not-dynamic", "zero"],
)
def test_default_threads_equal_pytorchs(env):
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    run = subprocess.run(
        [sys.executable, "-c", COMPARE], capture_output=True, text=True, env={**clean, **env},
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    ours, torchs = run.stdout.split()
    assert ours == torchs


def test_smt_counts_physical_cores(tmp_path):
    smt = fake_sysfs(tmp_path / "smt", [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0), (1, 0)])
    assert cpu_counts(smt) == (3, 6)
    assert default_threads({}, smt) == 3
    plain = fake_sysfs(tmp_path / "plain", [(0, 0), (0, 1)])
    assert default_threads({}, plain) == 2
    assert default_threads({"OMP_NUM_THREADS": "2"}, smt) == 2
    assert default_threads({"OMP_NUM_THREADS": "5"}, smt) == 3  # at most the cores
    assert default_threads({"OMP_NUM_THREADS": "5", "MKL_DYNAMIC": "false"}, smt) == 5
    assert default_threads({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "2"}, smt) == 2
    for bad in ("0", "-2", "many", ""):  # ignored, as PyTorch ignores them
        assert default_threads({"OMP_NUM_THREADS": bad}, smt) == 3
    assert default_threads({"OMP_NUM_THREADS": "2 threads"}, smt) == 2  # C's stoi
    assert cpu_counts(tmp_path / "none") == (os.cpu_count() or 1,) * 2


def test_current_threads():
    import torch

    threads = torch.get_num_threads()
    assert current_threads(3) == 3
    assert current_threads() == threads  # PyTorch loaded: its count
