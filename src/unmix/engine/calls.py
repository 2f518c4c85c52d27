"""One call of a separator on segments: where it runs, how many segments go into one call,
and the call itself (a torch separator, or an exported graph with numpy and no PyTorch).

Used by :mod:`~unmix.engine.batcher` (``--batch-size``); PyTorch is imported only on the
torch path, so that an exported graph runs without it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

import numpy as np

from ..errors import UnmixError
from ..export.graph_separator import as_graph_separator
from .segments import SegmentPlan

if TYPE_CHECKING:
    import torch

    from ..separator import Separator
    from .segments import AnySeparator

#: largest automatic batch size (segments per network call)
AUTO_CAP = 16
#: accelerator memory of one segment, per STFT value (frames × bins × 2 channels), is
#: estimated as 8 + 6 × outputs float32 values: the complex mixture (2), its magnitude (1),
#: waveforms and their normalised copy (2) and more (3); per output its magnitude, waveform
#: and slice (3) and a target network's largest transient (3: on CUDA the target networks
#: run at the same time, each on its stream); times this margin for the allocator
MEMORY_MARGIN = 1.5


def device_type(separator: AnySeparator) -> str:
    """``"cpu"``, ``"cuda"`` or ``"mps"``: where ``separator`` runs (an exported graph: the
    CPU, without importing PyTorch)."""
    if as_graph_separator(separator) is not None:
        return "cpu"
    return device_of(cast("Separator", separator)).type


def device_of(separator: Separator) -> torch.device:
    """Where ``separator``'s weights are (CPU for a graph without parameters)."""
    import torch

    return next(iter(separator.parameters()), torch.empty(0)).device


def segment_bytes(separator: AnySeparator, plan: SegmentPlan) -> int:
    """Estimated accelerator memory one segment of ``plan`` needs in a batch (bytes)."""
    config = separator.config
    values = (plan.segment // config.n_hop + 1) * (config.n_fft // 2 + 1) * 2
    floats = 8 + 6 * len(separator.output_names)
    return int(values * floats * MEMORY_MARGIN * 4)


def auto_batch_size(separator: AnySeparator, plan: SegmentPlan) -> int:
    """Segments per network call when none is asked for: an exported graph on ``N >= 2``
    threads ``N`` (side by side, one thread each: on the 2-core development machine the
    4-minute file of ``benchmarks/bench_export_cli.py`` took 0.85× (float32) and 0.90×
    (int8) the time of one segment at a time on two threads, medians of six alternating
    pairs, for 0.6–0.7 GB more at the peak), 1 elsewhere on the CPU and on MPS, on CUDA as
    many as half the free memory holds, at most :data:`AUTO_CAP`."""
    graph = as_graph_separator(separator)
    if graph is not None:
        return graph.parallel_segments
    if device_type(separator) != "cuda":
        return 1
    import torch

    device = device_of(cast("Separator", separator))
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(AUTO_CAP, free // 2 // segment_bytes(separator, plan)))


def resolve_batch_size(separator: AnySeparator, plan: SegmentPlan, requested: int | None) -> int:
    """``requested`` checked (a one-line error below 1), or the automatic size for ``None``."""
    if requested is None:
        return auto_batch_size(separator, plan)
    if requested < 1:
        raise UnmixError(f"batch size must be >= 1, got {requested}")
    return requested


def separate_batch(separator: AnySeparator, segments: list[np.ndarray]) -> list[np.ndarray]:
    """Run the separator once on equal-shaped ``(nb_channels, nb_timesteps)`` segments.

    Like :func:`~unmix.engine.segments.separate_segment` for each (audio shorter than one
    FFT frame is zero-padded for the transform and cut back), in one batch. An exported
    graph gets the segments as they are (numpy, nothing stacked or copied into a batch).

    Returns:
        one ``(nb_outputs, nb_channels, nb_timesteps)`` ``float32`` array per segment.
    """
    length = segments[0].shape[-1]
    minimum = separator.config.n_fft
    graph = as_graph_separator(separator)
    if graph is not None:
        padded = [
            np.pad(x, ((0, 0), (0, minimum - length))) if length < minimum else x for x in segments
        ]
        results = graph.separate_many([np.asarray(x, dtype=np.float32) for x in padded])
        return [np.ascontiguousarray(stems[..., :length]) for stems in results]
    x = np.stack(segments).astype(np.float32, copy=False)
    if length < minimum:
        x = np.pad(x, ((0, 0), (0, 0), (0, minimum - length)))
    return _torch_batch(cast("Separator", separator), x, length)


def _torch_batch(separator: Separator, x: np.ndarray, length: int) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        stems = separator(torch.from_numpy(x).to(device_of(separator)))[..., :length]
        out = np.ascontiguousarray(stems.float().cpu().numpy())
    return list(out)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the accelerator ran out of memory."""
    if "out of memory" in str(exc):
        return True
    torch = sys.modules.get("torch")  # a torch error needs torch loaded
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def empty_cuda_cache() -> None:
    """Give PyTorch's cached CUDA memory back (nothing without PyTorch or CUDA)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
