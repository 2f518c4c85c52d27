"""The printed table's note on ISR/SIR/SAR (issue 18 item 4): said exactly when the scores
are unregularized BSSEval of AAC-coded stems (docs/evaluation.md, conditioning)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unmix.evaluate import EvalSettings, rounding_noise_note
from unmix.tracks import Track

STEMS = [Track("A", "test", stem_file=Path("A.stem.mp4")), Track("B", "test", Path("B.stem.mp4"))]
WAVS = [Track("A", "test", files={"vocals": Path("A/vocals.wav")})]


def test_the_note_names_the_cause_and_the_remedy() -> None:
    note = rounding_noise_note(STEMS, EvalSettings())
    assert note is not None and "\n" not in note
    assert "rounding noise" in note and "--regularization 3e-5" in note
    assert "SDR and uSDR are exact" in note


@pytest.mark.parametrize(
    ("tracks", "settings"),
    [
        (STEMS, EvalSettings(regularization=3e-5)),  # better conditioned: meaningful
        (STEMS, EvalSettings(mode="sdr")),  # no ISR/SIR/SAR printed
        (WAVS, EvalSettings()),  # uncompressed full-band references (MUSDB18-HQ)
        ([*STEMS, *WAVS], EvalSettings()),  # not every reference is AAC-coded
        ([], EvalSettings()),
    ],
)
def test_no_note_where_the_scores_are_not_rounding_noise(
    tracks: list[Track], settings: EvalSettings
) -> None:
    assert rounding_noise_note(tracks, settings) is None
