"""unmix.evaluate and ``unmix evaluate``: museval's JSON, grouping and aggregation, the CLI."""

from __future__ import annotations

import json
import logging
import math
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from unmix import audio
from unmix import evaluate as ev
from unmix.cli import main
from unmix.config import ModelConfig
from unmix.hub.loading import save_model
from unmix.metrics import framewise_sdr
from unmix.models.umx import UMX, OpenUnmix

SOURCES = ("vocals", "drums", "bass", "other")


def _sources(rng: np.random.Generator, nb_channels: int, length: int) -> dict[str, np.ndarray]:
    """Well-conditioned (white-noise) sources ``{name: (nb_channels, length)}``."""
    return {
        name: (0.1 + 0.05 * k) * rng.standard_normal((nb_channels, length))
        for k, name in enumerate(SOURCES)
    }


def _estimates(rng: np.random.Generator, refs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = list(refs)
    return {
        name: 0.9 * x + 0.1 * refs[names[k - 1]] + 0.02 * rng.standard_normal(x.shape)
        for k, (name, x) in enumerate(refs.items())
    }


def test_json_is_museval_byte_for_byte(museval: types.ModuleType) -> None:
    values = [1.23456789, np.inf, np.nan, -3.0, 1e-7, -1e-7, 12345.678901234, -np.inf, 0.000005]
    metrics = {m: np.roll(np.array(values), k) for k, m in enumerate(ev.METRICS)}
    ours = ev.TrackScores("a track", "test", {"vocals": metrics, "drums": metrics})
    store = museval.TrackStore(track_name="a track", win=1.0, hop=1.0)
    for target in ("vocals", "drums"):
        store.add_target(target, {m: v.tolist() for m, v in metrics.items()})
    assert ours.to_json() == store.json
    back = ev.TrackScores.from_json(ours.to_json(), "a track", "test")
    np.testing.assert_array_equal(back.scores["drums"]["SDR"], ev.quantize(metrics["SDR"]))


def test_score_track_equals_eval_mus_track(museval: types.ModuleType, tmp_path: Path) -> None:
    """museval's grouping (vocals/accompaniment pair), padding and JSON, on a fake musdb track."""
    rng = np.random.default_rng(0)
    rate, length = 8000, 3 * 8000 + 500
    refs = _sources(rng, 1, length)
    ests = _estimates(rng, refs)
    ests["accompaniment"] = ests["drums"] + ests["bass"] + 0.5 * ests["other"]
    ests = {k: v[:, :-37] for k, v in ests.items()}  # shorter: zero-padded like museval
    targets = OrderedDict((n, types.SimpleNamespace(audio=x.T)) for n, x in refs.items())
    acc = refs["drums"] + refs["bass"] + refs["other"]
    targets["accompaniment"] = types.SimpleNamespace(audio=acc.T)
    targets["linear_mixture"] = types.SimpleNamespace(audio=(acc + refs["vocals"]).T)
    track = types.SimpleNamespace(name="fake", subset="test", rate=rate, targets=targets)
    museval.eval_mus_track(track, {k: v.T for k, v in ests.items()}, output_dir=str(tmp_path))
    ours = ev.score_track(refs, ests, rate, "fake", "test")
    assert list(ours.scores) == ["drums", "bass", "other", "vocals", "accompaniment"]
    assert ours.to_json() == (tmp_path / "test" / "fake.json").read_text()


def test_aggregation_equals_museval_evalstore(museval: types.ModuleType, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tracks = []
    for k in range(5):
        scores = {}
        for target in ("vocals", "bass"):
            values = {m: rng.normal(5, 3, size=7) for m in ev.METRICS}
            values["SDR"][rng.integers(0, 7, size=2)] = np.nan  # silent windows
            if k == 2 and target == "bass":
                values = {m: np.full(7, np.nan) for m in ev.METRICS}  # a track with no score
            scores[target] = values
        track = ev.TrackScores(f"track {k}", "test", scores)
        track.usdr = {"vocals": float(k), "bass": 2.0 * k}
        (tmp_path / "test").mkdir(exist_ok=True)
        (tmp_path / "test" / f"track {k}.json").write_text(track.to_json())
        tracks.append(track)
    for how in ev.AGGREGATIONS:
        store = museval.EvalStore(frames_agg=how, tracks_agg=how)
        store.add_eval_dir(str(tmp_path))
        expected = store.agg_frames_tracks_scores()
        summary = ev.aggregate(tracks, how, how)
        for target in ("vocals", "bass"):
            for metric in ev.TABLE_METRICS:
                assert summary.table[target][metric] == pytest.approx(
                    expected[target][metric], abs=1e-12
                )
        assert summary.table["bass"]["uSDR"] == pytest.approx(4.0)
        assert summary.mean["SDR"] == pytest.approx(
            (summary.table["vocals"]["SDR"] + summary.table["bass"]["SDR"]) / 2
        )


def test_scoring_groups_follow_museval() -> None:
    four = ["vocals", "drums", "bass", "other"]
    assert ev.scoring_groups(four) == [(four, four)]
    assert ev.scoring_groups([*four, "accompaniment"]) == [
        (four, ["drums", "bass", "other"]),
        (["vocals", "accompaniment"], ["vocals", "accompaniment"]),
    ]
    assert ev.scoring_groups(["vocals", "accompaniment"]) == [
        (["vocals", "accompaniment"], ["vocals", "accompaniment"])
    ]
    assert ev.scoring_groups(["vocals"]) == [(["vocals"], ["vocals"])]  # museval: no score


def test_sdr_mode_and_silent_estimate(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(2)
    refs = _sources(rng, 2, 3 * 8000)
    ests = _estimates(rng, refs)
    fast = ev.score_track(refs, ests, 8000, "t", mode="sdr")
    stack = np.stack([refs[n].T for n in SOURCES]), np.stack([ests[n].T for n in SOURCES])
    np.testing.assert_allclose(
        [fast.scores[n]["SDR"] for n in SOURCES], framewise_sdr(*stack, 8000, 8000)
    )
    assert all(np.isnan(fast.scores[n]["SIR"]).all() for n in SOURCES)
    assert '"SIR": NaN' in fast.to_json()
    ests["bass"] = np.zeros_like(ests["bass"])  # museval raises; we write NaN windows
    with caplog.at_level(logging.WARNING, logger="unmix.evaluate"):
        full = ev.score_track(refs, ests, 8000, "t")
    assert "['bass'] silent over the whole track" in caplog.text
    assert all(np.isnan(full.scores[n][m]).all() for n in SOURCES for m in ev.METRICS)


def test_mismatched_channels_are_named() -> None:
    refs = {"vocals": np.ones((2, 100)), "drums": np.ones((2, 100))}
    ests = {"vocals": np.ones((1, 100)), "drums": np.ones((2, 100))}
    with pytest.raises(ev.UnmixError, match=r"'vocals' has shape \(1, 100\).*\(2, 100\)"):
        ev.score_track(refs, ests, 100)
    with pytest.raises(ev.UnmixError, match="no estimate matches"):
        ev.score_track(refs, {"piano": np.ones((2, 100))}, 100)


def _write_dataset(
    root: Path, rng: np.random.Generator, names: list[str], rate: int, nb_channels: int = 2
) -> dict:
    """MUSDB18-HQ-like WAV folders under ``root``; returns ``{track: sources}``."""
    out = {}
    for name in names:
        sources = _sources(rng, nb_channels, int(2.5 * rate))
        sources = {k: v.astype(np.float32) for k, v in sources.items()}
        for source, x in {**sources, "mixture": sum(sources.values())}.items():
            audio.write(root / name / f"{source}.wav", x, rate)
        out[name] = sources
    return out


def test_cli_scores_an_estimates_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(3)
    rate = 8000
    data = _write_dataset(tmp_path / "hq" / "test", rng, ["Song A", "Song B"], rate, 1)
    for name, refs in data.items():
        for target, x in _estimates(rng, refs).items():
            audio.write(tmp_path / "est" / name / f"{target}.wav", x.astype(np.float32), rate)
    out = tmp_path / "out"
    code = main(
        ["evaluate", str(tmp_path / "est"), "--root", str(tmp_path / "hq"), "--out-dir", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "median over frames, then median over tracks" in printed
    assert "per-track audio folders (MUSDB18-HQ layout)" in printed and "subset test" in printed
    tracks = [
        ev.TrackScores.from_json((out / "test" / f"{n}.json").read_text(), n, "test") for n in data
    ]
    summary = ev.aggregate(tracks)
    rows = {
        line.split(",")[0]: line.split(",")
        for line in (out / "scores.csv").read_text().splitlines()
    }
    assert rows["target"] == ["target", "SDR", "SIR", "ISR", "SAR", "uSDR"]
    for target in SOURCES:
        assert float(rows[target][1]) == pytest.approx(summary.table[target]["SDR"], abs=1e-5)
        assert float(rows[target][2]) == pytest.approx(summary.table[target]["SIR"], abs=1e-5)
    assert "| **mean** |" in (out / "scores.md").read_text()
    assert len((out / "tracks.csv").read_text().splitlines()) == 1 + 2 * 4
    assert (out / "boxplot_vocals.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_model_dir_on_preview_clips(stem_track: Path, tmp_path: Path) -> None:
    """``--model DIR``: separate and score in one go; the saved stems score the same."""
    torch.manual_seed(0)
    config = ModelConfig(hidden_size=16, nb_layers=1, max_bin=64)
    model = save_model(
        tmp_path / "tiny",
        config,
        UMX({t: OpenUnmix.from_config(config) for t in config.targets}),
    )
    root, name = stem_track.parent.parent, stem_track.name.removesuffix(".stem.mp4")
    common = ["--root", str(root), "--tracks", name, "--no-plot"]
    first = ["--model", str(model), "--save-estimates", str(tmp_path / "est")]
    assert main(["evaluate", *first, *common, "--out-dir", str(tmp_path / "a")]) == 0
    again = [str(tmp_path / "est"), "--metrics", "sdr", "--out-dir", str(tmp_path / "b")]
    assert main(["evaluate", *again, *common]) == 0
    full, fast = (json.loads((tmp_path / d / "train" / f"{name}.json").read_text()) for d in "ab")
    assert [t["name"] for t in full["targets"]] == list(SOURCES)
    for a, b in zip(full["targets"], fast["targets"], strict=True):
        assert len(a["frames"]) == 6  # 300,032 samples: 6 whole seconds
        assert [f["metrics"]["SDR"] for f in a["frames"]] == [
            f["metrics"]["SDR"] for f in b["frames"]
        ]
        assert all(math.isfinite(f["metrics"]["SAR"]) for f in a["frames"])


def test_cli_plain_folders_without_subset(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    data = _write_dataset(tmp_path / "plain", rng, ["only"], 8000)
    for target, x in _estimates(rng, data["only"]).items():
        audio.write(tmp_path / "est" / "only" / f"{target}.flac", x.astype(np.float32), 8000)
    args = [
        "evaluate",
        str(tmp_path / "est"),
        "--root",
        str(tmp_path / "plain"),
        "--metrics",
        "sdr",
    ]
    assert main([*args, "--out-dir", str(tmp_path / "out"), "--no-plot"]) == 0
    text = (tmp_path / "out" / "only.json").read_text()
    assert '"ISR": NaN' in text
    assert (tmp_path / "out" / "scores.csv").read_text().splitlines()[0] == "target,SDR,uSDR"


def test_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    data = _write_dataset(tmp_path / "root" / "train", rng, ["x"], 8000)
    root = ["--root", str(tmp_path / "root"), "--no-plot", "--out-dir", str(tmp_path / "out")]
    assert main(["evaluate", *root]) == 1
    assert "give either a folder of estimates or --model" in capsys.readouterr().err
    (tmp_path / "est").mkdir()
    assert main(["evaluate", str(tmp_path / "est"), *root]) == 1
    assert "no estimates found" in capsys.readouterr().err
    audio.write(tmp_path / "est" / "x" / "vocals.wav", data["x"]["vocals"][:1], 8000)
    audio.write(tmp_path / "est" / "x" / "drums.wav", data["x"]["drums"], 8000)
    assert main(["evaluate", str(tmp_path / "est"), *root]) == 1  # mono vs stereo
    err = capsys.readouterr().err
    assert "'vocals' has shape (1, 20000)" in err and "(2, 20000)" in err
    # without matplotlib the run goes on without box plots (tests/commands/test_evaluate.py);
    # the library function still refuses with one line
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        ev.UnmixError, match=r"box plots need matplotlib: pip install 'unmix\[plot\]'"
    ):
        ev.boxplots([], tmp_path / "plots")
