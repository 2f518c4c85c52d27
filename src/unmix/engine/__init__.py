"""The separation engine: long audio in bounded memory, from arrays to batches of files.

* :mod:`~unmix.engine.segments` — segment plan, cross-fade, :class:`StreamingSeparator`
  (model-rate arrays, no I/O).
* :mod:`~unmix.engine.stream` — the streaming pipeline: any rate in, stems at that rate out
  (:func:`iter_separate`, :func:`separate_array`); input and output checks.
* :mod:`~unmix.engine.files` — one file to stem files (:func:`separate_file`) or arrays.
* :mod:`~unmix.engine.batch` — inputs to jobs to stem files (:func:`plan_batch`,
  :func:`separate_files`), with :mod:`~unmix.engine.inputs` (files, folders, stdin),
  :mod:`~unmix.engine.naming` (``--filename`` templates), :mod:`~unmix.engine.record`
  (what made each output: keep, or refuse a mix), :mod:`~unmix.engine.jobs` (jobs and
  their listener) and :mod:`~unmix.engine.parallel` (several files at once, one model).
* :mod:`~unmix.engine.batcher` — batched separation (``--batch-size``): one thread owns the
  model and runs equal-length segments of one or several files together, with
  :mod:`~unmix.engine.overlap` (reader and writer threads).
"""

from .batch import (
    BatchPlan,
    BatchResult,
    OutputOptions,
    plan_batch,
    prepare_out_dir,
    separate_files,
)
from .files import FileReport, separate_file, separate_path
from .inputs import find_inputs, input_name
from .jobs import BatchListener, Job
from .naming import FileNames
from .segments import (
    OVERLAP_SECONDS,
    SEGMENT_SECONDS,
    SegmentPlan,
    StreamingSeparator,
    plan_segments,
    separate_long,
)
from .stream import iter_separate, separate_array

__all__ = [
    "OVERLAP_SECONDS",
    "SEGMENT_SECONDS",
    "BatchListener",
    "BatchPlan",
    "BatchResult",
    "FileNames",
    "FileReport",
    "Job",
    "OutputOptions",
    "SegmentPlan",
    "StreamingSeparator",
    "find_inputs",
    "input_name",
    "iter_separate",
    "plan_batch",
    "plan_segments",
    "prepare_out_dir",
    "separate_array",
    "separate_file",
    "separate_files",
    "separate_long",
    "separate_path",
]
