"""``benchmarks/charts.py`` (issue 18 item 8): the pictures are drawn from the numbers that
docs/benchmarks.md records (so a chart cannot drift from its table), and each chart renders."""

from __future__ import annotations

import importlib.util
import json
import re
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def charts() -> types.ModuleType:
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("charts", REPO / "benchmarks" / "charts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(section: str) -> list[list[str]]:
    text = (REPO / "docs" / "benchmarks.md").read_text()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in body.splitlines()
        if re.match(r"\| (30 s|3 min|10 min|60 min|180 s) \|", line)
    ]


def _number(cell: str) -> float | None:
    found = re.match(r"[\d.]+", cell)
    return float(found.group()) if found else None


def test_the_separation_chart_draws_the_recorded_table(charts: types.ModuleType) -> None:
    rows = _rows("## Separation: speed and memory")
    s = charts.SEPARATION
    assert [r[0] for r in rows] == ["30 s", "3 min", "10 min", "60 min"]
    assert [_number(r[1]) for r in rows] == s["unmix_rtf"]
    assert [_number(r[2]) for r in rows] == s["unmix_gib"]
    assert [_number(r[3]) for r in rows] == s["openunmix_rtf"]
    assert [_number(r[4]) for r in rows] == s["openunmix_gib"]


def test_the_bsseval_chart_draws_the_recorded_table(charts: types.ModuleType) -> None:
    rows = _rows("## Metrics: BSSEval v4, unmix vs museval")
    b = charts.BSSEVAL
    assert [_number(r[2]) for r in rows] == b["museval_s"]
    assert [_number(r[3]) for r in rows] == b["unmix_s"]
    assert [_number(r[5]) for r in rows] == b["museval_mb"]
    assert [_number(r[6]) for r in rows] == b["unmix_mb"]


def test_every_chart_renders(charts: types.ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "img"
    assert charts.separation_chart(out).stat().st_size > 10_000
    assert charts.bsseval_chart(out).stat().st_size > 10_000
    run = tmp_path / "run"
    run.mkdir()
    history = {"best_epoch": 2, "train_loss": [3.0, 2.0, 1.5], "valid_loss": [3.5, 2.5, 2.6]}
    (run / "vocals.history.json").write_text(json.dumps(history))
    assert charts.training_chart(run, out, "m").name == "m-training.png"
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    lines = ["track,target,SDR,SIR,ISR,SAR,uSDR"]
    lines += [f"T{k},{t},{k},{k},{k},nan,{k}" for k in range(3) for t in charts.TARGETS]
    (evaluation / "tracks.csv").write_text("\n".join(lines) + "\n")
    png = charts.evaluation_chart(evaluation, None, out, "m")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
