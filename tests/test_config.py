"""Model configurations are checked against what the STFT and the networks can do, and
every size is bounded before anything is allocated (issue 20, items 2 and 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from unmix.cli import main
from unmix.config import LIMITS, ModelConfig
from unmix.errors import UnmixError
from unmix.fileio import atomic_write_text

BASE = ModelConfig().to_dict()


def _from(**changes: object) -> ModelConfig:
    return ModelConfig.from_dict({**BASE, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_fft": 512, "n_hop": 512}, "n_hop must divide n_fft and be at most n_fft / 2"),
        ({"n_fft": 512, "n_hop": 1024}, "n_hop must divide n_fft"),
        ({"n_fft": 512, "n_hop": 300}, "n_hop must divide n_fft"),
        ({"n_fft": 512, "n_hop": 0}, "n_hop must divide n_fft"),
        ({"n_fft": 513, "n_hop": 171, "max_bin": None}, "n_fft must be even"),
        ({"n_fft": 0}, "n_fft must be even and in 16..65536"),
        ({"n_fft": 2**31}, "n_fft must be even and in 16..65536"),
        ({"hidden_size": 10**9}, "hidden_size must be in 1..8192"),
        ({"hidden_size": -2}, "hidden_size must be in 1..8192"),
        ({"nb_layers": 10**6}, "nb_layers must be in 1..16"),
        ({"sample_rate": 10**30}, "sample_rate must be in 1000..768000 Hz"),
        ({"sample_rate": 1}, "sample_rate must be in 1000..768000 Hz"),
        ({"max_bin": 10**9}, "max_bin must be in 1..2049"),
        ({"targets": [f"t{k}" for k in range(65)]}, "1..64 targets"),
        ({"targets": []}, "1..64 targets"),
        ({"targets": ["../../etc/x"]}, "target names must be"),
        ({"targets": ["vocals", ""]}, "target names must be"),
        ({"hidden_size": 8192, "nb_layers": 16, "targets": ["a"] * 1}, "parameters is more"),
    ],
)
def test_bad_values_are_refused_in_one_line(changes, message):
    with pytest.raises(UnmixError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        _from(**changes)
    assert "\n" not in str(err.value) and len(str(err.value)) < 700


def test_released_and_usual_configurations_pass():
    for n_fft, n_hop in ((4096, 1024), (1024, 512), (2048, 512), (512, 128), (16, 8)):
        config = _from(n_fft=n_fft, n_hop=n_hop, max_bin=None)
        assert config.n_hop == n_hop
    assert LIMITS["parameters"] >= 8 * ModelConfig(hidden_size=1024).parameter_count()


@pytest.mark.parametrize("n_fft", [256, 512, 2048])
def test_accepted_hops_give_a_window_envelope_bounded_away_from_zero(n_fft):
    """What the rule guarantees: with n_hop | n_fft and n_hop <= n_fft / 2, every output
    sample is covered by at least two periodic Hann windows, so the ISTFT never divides by
    (nearly) zero; a hop of n_fft - 1 would leave samples covered by a single window tip."""
    window = np.sin(np.pi * np.arange(n_fft) / n_fft) ** 2  # periodic Hann
    for n_hop in (h for h in range(1, n_fft + 1) if n_fft % h == 0 and n_fft // h >= 2):
        ModelConfig(n_fft=n_fft, n_hop=n_hop, max_bin=None)
        envelope = np.zeros(n_fft * 4)
        for start in range(0, len(envelope) - n_fft + 1, n_hop):
            envelope[start : start + n_fft] += window**2
        assert envelope[n_fft : 3 * n_fft].min() > 0.3
    with pytest.raises(UnmixError):
        ModelConfig(n_fft=n_fft, n_hop=n_fft - 1, max_bin=None)


def test_config_json_with_hop_equal_to_fft_is_refused_by_separate(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    atomic_write_text(folder / "config.json", json.dumps({**BASE, "n_fft": 512, "n_hop": 512}))
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros((4410, 2), np.float32), 44100)
    assert main(["separate", str(wav), "--model", str(folder), "--out-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "n_hop must divide n_fft" in err and "\n" not in err
    assert not (tmp_path / "x").exists()
