"""Numeric precision of the separation networks: ``fp32`` (default), ``bf16``, ``fp16``.

Only the networks run in reduced precision; the STFT, the Wiener filter and the ISTFT stay
float32 and the stems are float32 (``docs/speed.md``). ``bf16`` needs a CPU with native
bfloat16 instructions (AVX-512 BF16 or AMX) or a CUDA GPU that supports it; ``fp16`` needs a
CUDA GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, cast

import torch

from .errors import UnmixError

Precision = Literal["fp32", "bf16", "fp16"]

#: the values of ``--precision``, in the order the help lists them
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")

DTYPES: dict[Precision, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU runs bfloat16 matrix products natively, and what was found."""
    capability = torch.backends.cpu.get_cpu_capability()
    native = bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
    return native, f"CPU capability {capability}, oneDNN bf16 {'yes' if native else 'no'}"


def check_precision(name: str, device: torch.device) -> Precision:
    """``name`` as a :data:`Precision` if ``device`` can run it; a one-line
    :class:`~unmix.errors.UnmixError` otherwise (unknown name, fp16 on a CPU, bf16 on a
    device without bfloat16 support)."""
    value = name.strip().lower()
    if value not in PRECISIONS:
        raise UnmixError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    precision = cast(Precision, value)
    if precision == "fp16" and device.type != "cuda":
        raise UnmixError(
            f"precision fp16 needs a CUDA GPU, the model runs on {device.type}; "
            "use bf16 on CPU or fp16 on CUDA"
        )
    if precision == "bf16":
        if device.type == "cpu":
            native, found = cpu_bf16_support()
            if not native:
                raise UnmixError(
                    f"precision bf16 needs a CPU with AVX-512 BF16 or AMX ({found}); use fp32"
                )
        elif device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UnmixError("this CUDA GPU does not support bf16; use fp16 or fp32")
        elif device.type not in ("cpu", "cuda"):
            raise UnmixError(f"precision bf16 is not supported on {device.type}; use fp32")
    return precision


@contextmanager
def network_precision(precision: Precision, device: torch.device) -> Iterator[None]:
    """Run the networks inside in ``precision`` (autocast); nothing changes for ``fp32``."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=DTYPES[precision]):
        yield
