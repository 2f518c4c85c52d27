"""Run an exported separation graph with onnxruntime (numpy only: no PyTorch imported).

``onnxruntime`` is an optional extra (``pip install 'unmix[onnx]'``) and is imported when a
graph is opened.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioError, UnmixError
from .metadata import INPUT_NAME, OUTPUT_NAME, GraphInfo
from .protoscan import WireError, has_external_data

log = logging.getLogger(__name__)

#: largest graph file read (the protobuf limit; umxl is about 0.5 GB)
MAX_GRAPH_BYTES = 2 << 30


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise UnmixError(
            "running an .onnx model needs onnxruntime: pip install 'unmix[onnx]'"
        ) from None
    return onnxruntime


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _check_self_contained(data: bytes, what: str) -> None:
    """Refuse a graph whose tensors live in other files (ONNX external data).

    Raises:
        UnmixError: a malformed protobuf, or a tensor stored outside the file.
    """
    try:
        external = has_external_data(data)
    except WireError as exc:
        raise UnmixError(
            f"{what} is not a readable ONNX model ({exc}); export one with 'unmix export'"
        ) from None
    if external:
        raise UnmixError(
            f"{what} keeps tensors in other files (ONNX external data); unmix reads only "
            "self-contained graphs: re-export it with 'unmix export'"
        )


#: opens the single-threaded sessions beside the wide ones
_OPENER = ThreadPoolExecutor(1, thread_name_prefix="unmix-onnx-open")

#: whether this process has tried to register the shared arena
_arena_shared = False


def _share_one_arena(ort: Any) -> None:
    """Register one CPU memory arena for every session that asks for it, once per process.

    A graph's sessions (one on all threads, one single-threaded for segments side by side)
    then draw their working memory from the same arena instead of one each: a 4-minute
    file on two threads ran its pairs of segments in the narrow session and its last,
    shorter segment in the wide one, which faulted in a second arena of about 0.6 GB
    (measured: peak 2.2 → 1.75 GB for the int8 umxhq-size graph, no page faults in the wide
    session's first run). The arena keeps its memory for the process's lifetime, as a
    session's own arena keeps it for the session's.
    """
    global _arena_shared
    if _arena_shared:
        return
    _arena_shared = True
    try:
        info = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
    except Exception as exc:  # already registered by the host program, or an old onnxruntime
        log.debug("no shared onnxruntime arena registered: %s", _first_line(exc))


def _open_session(ort: Any, data: bytes, threads: int, what: str) -> Any:
    """An onnxruntime CPU session of ``data`` with ``threads`` intra-op threads.

    The same options serve calls from several threads at once. Graph optimisations go up
    to the extended level (fusions, constant folding): the last level adds only layout
    changes for convolutions, which these graphs do not have, and took 0.1 s more to open
    an umxhq-size graph (0.32 against 0.41-0.46 s) for the same run time. onnxruntime's
    memory pattern (one block per run, planned from the previous run of the same shape) is
    off: it raised the peak for one 60-s umxhq-size segment from 3.6 to
    5.6 GB (and to 9.6 GB for two side by side) and paid off only from the third run of a
    shape on (4.2 s against 4.5 s per 60 s; the first two runs were as slow or slower).

    Raises:
        UnmixError: onnxruntime cannot read the graph.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.enable_mem_pattern = False
    _share_one_arena(ort)
    options.add_session_config_entry("session.use_env_allocators", "1")
    try:  # from bytes: the runtime never opens another file
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes for every failure
        raise UnmixError(
            f"{what} is not a readable ONNX model ({_first_line(exc)}); export one with "
            "'unmix export'"
        ) from None


class OnnxGraph:
    """An exported graph, checked and ready to run.

    Args:
        path: the ``.onnx`` file written by ``unmix export``.
        threads: CPU threads (0: onnxruntime's choice). One input runs on all of them
            (intra-op threads); with ``threads >= 2``, :meth:`run_many` runs up to ``threads``
            inputs side by side, each on one thread (a second, single-threaded session).

    Raises:
        UnmixError: a missing, huge, corrupt or foreign file, missing metadata, or inputs and
            outputs that are not ``mixture (C, T) → stems (J, C, T)``.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        path = Path(path)
        what = str(path)
        if not path.is_file():
            raise UnmixError(f"{what}: no such file")
        size = path.stat().st_size
        if size > MAX_GRAPH_BYTES:
            raise UnmixError(f"{what} is {size / 2**30:.1f} GiB; an unmix graph is under 2 GiB")
        ort = import_onnxruntime()
        data = path.read_bytes()
        _check_self_contained(data, what)
        self.threads = max(0, threads)
        # segments side by side (run_many): one single-threaded session called from several
        # threads (onnxruntime's run is thread-safe and releases the GIL); the same
        # arithmetic as the wide session, so the stems do not depend on how segments are
        # spread over threads. Opened now, on another thread while this one opens the wide
        # session (onnxruntime releases the GIL there too): both are ready at the cost of
        # one (f32 umxhq size: 0.5 s against 0.8 s one after the other).
        narrow: Future[Any] | None = None
        if self.parallel_segments > 1:
            narrow = _OPENER.submit(_open_session, ort, data, 1, what)
        try:
            session = _open_session(ort, data, threads, what)
            self._check_io(session, what)
        except BaseException:
            if narrow is not None:
                wait([narrow])  # it fails the same way, or is simply dropped
            raise
        self.session = session
        self.path = path
        self._narrow = narrow

    def _check_io(self, session: Any, what: str) -> None:
        """Read the metadata and check the graph's signature (sets :attr:`info`)."""
        self.info = GraphInfo.from_metadata(session.get_modelmeta().custom_metadata_map, what)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
            raise UnmixError(
                f"{what}: expected one input {INPUT_NAME!r} and one output {OUTPUT_NAME!r}, got "
                f"{[i.name for i in inputs]} → {[o.name for o in outputs]}; re-export it"
            )

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the stems, in output order."""
        return self.info.outputs

    @property
    def parallel_segments(self) -> int:
        """How many inputs :meth:`run_many` runs at the same time (``threads``, or 1)."""
        return self.threads if self.threads >= 2 else 1

    def run(self, mixture: np.ndarray) -> np.ndarray:
        """Separate ``(nb_channels, nb_samples)`` float32 audio at the graph's rate.

        Audio shorter than :attr:`GraphInfo.min_samples` is zero-padded and cut back.

        Returns:
            stems ``(nb_outputs, nb_channels, nb_samples)`` float32.

        Raises:
            AudioError: a channel count other than the graph's, or no samples.
            UnmixError: the graph gave NaN or infinite values.
        """
        return self._run(self.session, mixture)

    def run_many(self, mixtures: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`run` for each input, up to :attr:`parallel_segments` at a time.

        Several inputs run side by side, each on one thread; a single input runs on all
        threads. The stems are those of :meth:`run`, bit for bit, in input order.
        """
        if len(mixtures) < 2 or self.parallel_segments < 2:
            return [self.run(mixture) for mixture in mixtures]
        assert self._narrow is not None  # opened with the graph when parallel_segments > 1
        narrow = self._narrow.result()
        workers = min(len(mixtures), self.parallel_segments)
        with ThreadPoolExecutor(workers, thread_name_prefix="unmix-onnx") as pool:
            return list(pool.map(lambda mixture: self._run(narrow, mixture), mixtures))

    def _run(self, session: Any, mixture: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(mixture, dtype=np.float32)
        channels = self.info.nb_channels
        if x.ndim != 2 or x.shape[0] != channels:
            raise AudioError(
                f"{self.path.name} was exported for {channels}-channel audio, got shape "
                f"{x.shape}; export it with --channels {x.shape[0] if x.ndim == 2 else 1} "
                "or convert the audio"
            )
        length = x.shape[1]
        if length == 0:
            raise AudioError("audio is empty (0 samples)")
        if length < self.info.min_samples:
            x = np.pad(x, ((0, 0), (0, self.info.min_samples - length)))
        stems: np.ndarray = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0][..., :length]
        if not np.isfinite(stems).all():
            raise UnmixError(f"{self.path.name} gave NaN or infinite stems; nothing was written")
        return stems
