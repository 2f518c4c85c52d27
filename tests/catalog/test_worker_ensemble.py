"""``--engine ray`` with ``--shifts`` and ``--model a+b --ensemble-weights``: the ledger's
settings carry them (only when set) and the actors load the same separator."""

from __future__ import annotations

from unmix.catalog.worker import load_for
from unmix.ensemble import Ensemble

from .test_ledger import settings


def test_shifts_and_weights_enter_the_ledger_settings_only_when_set() -> None:
    plain = settings("umx-preview")
    assert "shifts" not in plain and "ensemble_weights" not in plain
    s = settings("umx-preview+umx-rt-preview", "--shifts", "2", "--ensemble-weights", "vocals=3,1")
    assert s["shifts"] == 2 and s["ensemble_weights"] == ["vocals=3,1"]
    separator = load_for(s, "cpu")
    assert isinstance(separator, Ensemble) and separator.shifts == 2
    assert separator.settings_record()["ensemble_weights"]["vocals"] == [0.75, 0.25]
