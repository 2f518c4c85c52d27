"""The sessions behind an opened graph: on several threads a single-threaded one for segments
side by side, opened with the graph, and one memory arena that both draw from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from unmix.config import ModelConfig
from unmix.errors import UnmixError
from unmix.export import OnnxGraph, export_onnx
from unmix.filtering import WienerSettings
from unmix.models.architectures import get_architecture
from unmix.separator import Separator

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ModelConfig(targets=("vocals", "drums"), hidden_size=16, nb_layers=1)


@pytest.fixture(scope="module")
def small_graph(tmp_path_factory) -> Path:
    model = get_architecture(SMALL.arch).build(SMALL)
    randomize(model, 3)
    path = tmp_path_factory.mktemp("graphs") / "small.onnx"
    export_onnx(Separator(model, SMALL, WienerSettings(niter=1)).freeze(), path)
    return path


#: a fresh process (the arena is the process's): page faults of a pair of inputs side by
#: side, then of one input on the wide session
FAULTS = """
import resource, sys
import numpy as np
from unmix.export import OnnxGraph
graph = OnnxGraph(sys.argv[1], threads=2)
x = (np.random.default_rng(0).standard_normal((2, 44100 * 20)) * 0.1).astype(np.float32)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = faults(); graph.run_many([x, x]); b = faults(); graph.run(x); c = faults()
print(b - a, c - b)
"""


def test_wide_and_narrow_sessions_share_one_arena(small_graph):
    # with an arena per session the wide session's first run faulted in its own working
    # memory (about half the pair's: 45k pages against 78k), with one arena it reuses the
    # pair's (under 1k)
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, str(small_graph)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    pair, wide = map(int, out.stdout.split())
    assert pair > 20_000, out.stdout
    assert wide < pair / 10, out.stdout


def test_side_by_side_equals_one_at_a_time(small_graph):
    rng = np.random.default_rng(1)
    xs = [(rng.standard_normal((2, 44100 * 3)) * 0.1).astype(np.float32) for _ in range(3)]
    graph = OnnxGraph(small_graph, threads=2)
    assert graph.parallel_segments == 2
    together = graph.run_many(xs)
    alone = [OnnxGraph(small_graph, threads=1).run(x) for x in xs]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_corrupt_graph_on_several_threads_is_one_error(small_graph, tmp_path):
    # the single-threaded session is opened beside the wide one: its failure must not
    # surface as a second error or a stray thread's traceback
    model = onnx.load(small_graph)
    model.graph.node[0].op_type = "NoSuchOperator"  # readable protobuf, unknown operator
    bad = tmp_path / "bad.onnx"
    onnx.save(model, bad)
    with pytest.raises(UnmixError, match=r"not a readable ONNX model.*INVALID_GRAPH") as info:
        OnnxGraph(bad, threads=2)
    assert "\n" not in str(info.value)
