"""``unmix serve --model a+b``: the web worker's separators for an ensemble."""

from __future__ import annotations

import pytest
import torch

from unmix.ensemble import Ensemble
from unmix.errors import UnmixError
from unmix.web.worker import Separators

from ..test_shifts import tiny_separator

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]


def test_each_target_tuple_gets_an_ensemble_of_the_members():
    a, b = tiny_separator(seed=1), tiny_separator(seed=5)
    members = [("a", a.config, a.model), ("b", b.config, b.model)]
    separators = Separators(a.config, a.model, a.wiener, torch.device("cpu"), members)
    full = separators.get(separators.targets)
    vocals = separators.get(("vocals",))
    assert isinstance(full, Ensemble) and full.names == ("a", "b")
    assert vocals.output_names == ("vocals",) and separators.get(("vocals",)) is vocals
    x = torch.randn(1, 2, 44100)
    with torch.inference_mode():
        torch.testing.assert_close(full(x), (a(x) + b(x)) / 2, rtol=0, atol=1e-6)


def test_members_that_do_not_fit_are_refused_at_the_first_separator():
    a, slow = tiny_separator(), tiny_separator(sample_rate=16000)
    members = [("a", a.config, a.model), ("slow", slow.config, slow.model)]
    separators = Separators(a.config, a.model, a.wiener, torch.device("cpu"), members)
    with pytest.raises(UnmixError, match="must share a sample rate: a runs at 44100 Hz, slow at"):
        separators.get(separators.targets)
