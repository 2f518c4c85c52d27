"""Trace a module into ONNX bytes with the TorchScript exporter, quietly, at :data:`OPSET`.

One place for what every exported graph needs: one intra-op thread while tracing (models
that run their branches on threads take the plain path), the exporter's warnings and
prints silenced, and a failure reported as one line that names the model.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UnmixError
from .metadata import OPSET


def trace(
    module: nn.Module,
    examples: Sequence[Tensor],
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic: dict[str, dict[int, str]],
    path: Path,
) -> bytes:
    """The ONNX bytes of ``module`` traced on ``examples`` (written to ``path`` first).

    Raises:
        UnmixError: the tracer failed (the model's class named).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models that run branches on threads take the plain path
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(examples),
                path,
                dynamo=False,
                opset_version=OPSET,
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=dynamic,
            )
    except UnmixError:
        raise
    except Exception as exc:
        model = getattr(module, "model", module)
        raise UnmixError(
            f"cannot export the {type(model).__name__} model: the tracer failed "
            f"({str(exc).splitlines()[0][:200]})"
        ) from None
    finally:
        torch.set_num_threads(threads)
    return path.read_bytes()
