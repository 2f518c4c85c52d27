"""How many CPU threads to use by default, chosen as PyTorch chooses them, without PyTorch.

An exported graph runs on onnxruntime, and ``unmix separate --model FILE.onnx`` does not
import PyTorch; without ``--threads`` it still uses the thread count the PyTorch path would
have used (:func:`default_threads`), so that both paths run on the same number of threads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: where Linux describes its CPUs
SYSFS_CPUS = Path("/sys/devices/system/cpu")


def _env_threads(env: Mapping[str, str], name: str) -> int:
    """The positive whole number at the start of ``env[name]`` (as C's ``stoi`` reads it), or 0."""
    text = env.get(name, "").strip()
    digits = len(text) - len(text.lstrip("+-0123456789")) if text else 0
    try:
        value = int(text[:digits])
    except ValueError:
        return 0
    return max(value, 0)


def cpu_counts(root: Path = SYSFS_CPUS) -> tuple[int, int]:
    """``(physical cores, logical processors)`` of this machine.

    Read from ``root/cpu<N>/topology`` (the distinct package and core ids); where that is
    not readable, both are :func:`os.cpu_count`. Like PyTorch (its ``cpuinfo``), this
    counts every CPU of the machine, not only those the process may run on.
    """
    cores: set[tuple[str, str]] = set()
    processors = 0
    for topology in root.glob("cpu[0-9]*/topology"):
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            continue
        processors += 1
        cores.add((package, core))
    if not processors:
        count = os.cpu_count() or 1
        return count, count
    return len(cores), processors


def default_threads(env: Mapping[str, str] | None = None, root: Path = SYSFS_CPUS) -> int:
    """PyTorch's default intra-op thread count (``torch.get_num_threads()`` in a fresh process).

    As PyTorch's x86 builds choose it (OpenMP with MKL: ``mkl_get_max_threads``): the
    number of physical cores (the logical processors where no core count is known);
    ``MKL_NUM_THREADS``, else ``OMP_NUM_THREADS``, when set to a positive number, at most
    that many cores unless ``MKL_DYNAMIC=FALSE``. On a machine without SMT the cores are the
    processors, :func:`os.cpu_count`.
    """
    env = os.environ if env is None else env
    cores, processors = cpu_counts(root)
    cores = cores if 0 < cores < processors else max(processors, 1)
    threads = _env_threads(env, "MKL_NUM_THREADS") or _env_threads(env, "OMP_NUM_THREADS")
    if not threads:
        return cores
    dynamic = env.get("MKL_DYNAMIC", "").strip().lower() != "false"
    return min(threads, cores) if dynamic else threads


def current_threads(requested: int | None = None) -> int:
    """``requested`` if given (``--threads N``); else PyTorch's current count where it is
    loaded already (the CLI called from Python), else :func:`default_threads`: the count the
    PyTorch path would use, found without importing PyTorch."""
    if requested:
        return requested
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    return default_threads()
