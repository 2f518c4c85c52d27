"""The shipped model umx-preview2 (``src/unmix/zoo/umx-preview2``): small, documented,
offline, as fast as umx-preview (same networks' sizes), and as good on the validation
previews as its model card says (every target at least 1 dB above mixture/4)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from unmix import audio as audio_io
from unmix.evaluate.estimates import EstimateSource, model_estimates
from unmix.evaluate.run import evaluate_tracks
from unmix.evaluate.scores import aggregate
from unmix.evaluate.scoring import EvalSettings
from unmix.hub.loading import load_separator
from unmix.hub.registry import get_bundle
from unmix.tracks import Track, find_tracks

pytestmark = pytest.mark.usefixtures("one_thread")

ZOO = Path(__file__).resolve().parents[2] / "src" / "unmix" / "zoo"
TARGETS = ("vocals", "drums", "bass", "other")

#: the model card's validation table (SDR, dB; niter 1): model and mixture/4
PUBLISHED = {"vocals": 5.00, "drums": 4.86, "bass": 3.82, "other": 2.56}
QUARTER_MIX = {"vocals": 1.45, "drums": 0.85, "bass": 0.74, "other": 1.11}


def test_files_are_small_float16_and_documented() -> None:
    folder = ZOO / "umx-preview2"
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert {"config.json", "training.json", "MODEL_CARD.md"} <= set(sizes)
    assert sorted(n for n in sizes if n.endswith(".safetensors")) == sorted(
        f"{t}.safetensors" for t in TARGETS
    )
    for target in TARGETS:
        assert sizes[f"{target}.safetensors"] < 3_000_000
        with safe_open(folder / f"{target}.safetensors", "pt") as f:
            assert f.get_tensor("fc1.weight").dtype == torch.float16
    card = (folder / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card and "mixture/4" in card and "--init umx-preview" in card


def test_same_networks_as_umx_preview_and_only_other_retrained() -> None:
    assert get_bundle("umx-preview2").config == get_bundle("umx-preview").config
    for target in TARGETS:
        with (
            safe_open(ZOO / "umx-preview" / f"{target}.safetensors", "pt") as a,
            safe_open(ZOO / "umx-preview2" / f"{target}.safetensors", "pt") as b,
        ):
            keys = list(a.keys())
            assert set(keys) == set(b.keys())
            same = all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in keys)
            assert same == (target != "other"), target


def test_loads_offline_and_separates_the_example_clip(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNMIX_OFFLINE", "1")
    audio, _ = audio_io.read(clip, duration=3.0)
    separator = load_separator("umx-preview2", device="cpu", progress=False)
    assert separator.output_names == TARGETS
    stems = separator(torch.from_numpy(audio[None]))[0].numpy()
    assert stems.shape == (4, *audio.shape) and np.isfinite(stems).all()
    assert all(np.abs(s).max() > 1e-3 for s in stems)
    # with the Wiener filter the stems add up to the input (almost: its regulariser)
    error = stems.sum(0) - audio
    assert 10 * np.log10(np.sum(audio**2) / np.sum(error**2)) > 30


def quarter_mixture(
    track: Track, sources: Mapping[str, np.ndarray], rate: int
) -> dict[str, np.ndarray]:
    """The mixture/4 baseline."""
    return {t: np.asarray(sources["mixture"], dtype=np.float32) / 4 for t in TARGETS}


def validation_sdr(tracks: list[Track], estimates: EstimateSource) -> dict[str, float]:
    """SDR per target as ``unmix evaluate --metrics sdr`` aggregates it."""
    done, failed = evaluate_tracks(tracks, estimates, None, EvalSettings(mode="sdr"), report=print)
    assert not failed and len(done) == len(tracks), failed
    table = aggregate(done, metrics=("SDR",)).table
    return {t: table[t]["SDR"] for t in TARGETS}


@pytest.mark.slow
def test_validation_sdr_is_as_published(shared_clips: list[Path]) -> None:
    root = shared_clips[0].parents[1]
    tracks = find_tracks(root, "train", "valid")
    assert len(tracks) == 14
    separator = load_separator("umx-preview2", device="cpu", progress=False)
    sdr = validation_sdr(tracks, model_estimates(separator))
    quarter = validation_sdr(tracks, quarter_mixture)
    for target in TARGETS:
        assert abs(quarter[target] - QUARTER_MIX[target]) < 0.01, quarter
        assert sdr[target] > PUBLISHED[target] - 0.05, sdr
        assert sdr[target] - quarter[target] > 1.0, sdr
