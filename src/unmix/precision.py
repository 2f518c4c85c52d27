"""Numeric precision of the separation networks: ``fp32`` (default), ``bf16``, ``fp16``.

Only the networks run in reduced precision (autocast: matrix products and LSTMs in
``bf16``/``fp16``, normalisations and the output masks in float32); the STFT, the Wiener
filter and the ISTFT stay float32 and the stems are float32 (``docs/speed.md``).

* ``bf16`` needs a CPU with native bfloat16 instructions (AVX-512 BF16 or AMX: oneDNN's
  bf16 kernels) or a CUDA GPU that supports it (Ampere and later).
* ``fp16`` needs a CUDA GPU (a CPU has no fast float16 matrix products).

Other code reads the names here: :data:`Precision`, :data:`PRECISIONS`,
:func:`parse_precision`, :func:`check_precision`, :func:`network_precision`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .choices import DEFAULT_PRECISION as DEFAULT_PRECISION
from .choices import PRECISIONS as PRECISIONS
from .choices import Precision as Precision
from .choices import parse_precision as parse_precision
from .errors import UnmixError

#: the autocast type of each reduced precision
DTYPES: dict[Precision, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU runs bfloat16 matrix products natively (oneDNN's test for AVX-512
    BF16 or AMX), and a few words on what was found (for messages)."""
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        native = False
    return native, f"found {capability}, oneDNN bf16 {'yes' if native else 'no'}"


def check_precision(name: str, device: torch.device | str) -> Precision:
    """``name`` as a :data:`Precision` if the networks can run in it on ``device``.

    Raises:
        UnmixError: (one line) an unknown name, ``fp16`` off CUDA, ``bf16`` on a CPU or GPU
            without bfloat16 support, or a reduced precision on another device (MPS).
    """
    precision = parse_precision(name)
    kind = torch.device(device).type
    if precision == "fp32":
        return precision
    if kind not in ("cpu", "cuda"):
        raise UnmixError(f"precision {precision} is not supported on {kind}; use fp32")
    if precision == "fp16" and kind != "cuda":
        raise UnmixError(
            f"precision fp16 needs a CUDA GPU, the model runs on {kind}; "
            "use bf16 on CPU or fp16 on CUDA"
        )
    if precision == "bf16" and kind == "cpu":
        native, found = cpu_bf16_support()
        if not native:
            raise UnmixError(
                f"precision bf16 needs a CPU with AVX-512 BF16 or AMX ({found}); use fp32 "
                "here, or fp16/bf16 on a CUDA GPU"
            )
    if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise UnmixError("this CUDA GPU has no bf16 support; use fp16 or fp32")
    return precision


@contextmanager
def network_precision(precision: Precision, device: torch.device | str) -> Iterator[None]:
    """Run the networks called inside in ``precision`` on ``device`` (autocast); nothing
    changes for ``fp32``. Autocast is per thread: code that hands a network to worker
    threads carries it over (:func:`unmix.models.umx.UMX.forward` does)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=DTYPES[precision]):
        yield
