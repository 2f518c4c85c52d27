"""Weight files: safe loading, legacy keys, strict checks, safetensors round trip."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from unmix.config import CONFIGS, ModelConfig
from unmix.errors import WeightsError
from unmix.hub.folders import read_folder
from unmix.hub.infer import infer_config
from unmix.hub.loading import save_model
from unmix.hub.weights import LEGACY_KEYS, load_into, read_state_dict
from unmix.models.umx import UMX, OpenUnmix

from ..helpers import reference_state_dicts

TINY = ModelConfig(targets=("vocals", "drums"), n_fft=512, n_hop=128, hidden_size=32, max_bin=200)


class _Evil:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "vocals.pth"
    with open(path, "wb") as fh:
        pickle.dump({"fc1.weight": _Evil(marker)}, fh)
    with pytest.raises(WeightsError, match="refusing to load") as err:
        read_state_dict(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    # also through torch.save's zip format
    torch.save({"x": _Evil(marker)}, path)
    with pytest.raises(WeightsError, match="refusing to load"):
        read_state_dict(path)
    assert not marker.exists()


def test_reference_state_dict_names_load_strictly(openunmix):
    for name in ("umxhq", "umxse", "umxl"):
        config = CONFIGS[name].with_(targets=("vocals",))
        ref = reference_state_dicts(openunmix, config, legacy=True)["vocals"]
        assert set(ref) >= LEGACY_KEYS
        ours = OpenUnmix.from_config(config)
        assert list(ours.state_dict()) == [k for k in ref if k not in LEGACY_KEYS]
        load_into(ours, ref, "test")
        for key, value in ours.state_dict().items():
            assert torch.equal(value, ref[key]), key


def test_umxhq_parameter_count():
    net = OpenUnmix.from_config(CONFIGS["umxhq"])
    assert sum(p.numel() for p in net.parameters()) == 8_893_348
    assert sum(v.numel() for v in net.state_dict().values()) == 8_903_595


def test_missing_unexpected_and_wrong_shapes_are_named():
    net = OpenUnmix.from_config(TINY)
    state = dict(net.state_dict())
    del state["fc2.weight"]
    state["bogus"] = torch.zeros(1)
    state["fc1.weight"] = torch.zeros(3, 3)
    with pytest.raises(WeightsError) as err:
        load_into(OpenUnmix.from_config(TINY), state, "x.pth")
    message = str(err.value)
    assert "missing keys [fc2.weight]" in message
    assert "unexpected keys [bogus]" in message
    assert "fc1.weight (3, 3)" in message


def test_truncated_files_give_clear_errors(tmp_path):
    net = OpenUnmix.from_config(TINY)
    save_model(tmp_path / "m", TINY, UMX({t: net for t in TINY.targets}))
    st = tmp_path / "m" / "vocals.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        read_state_dict(st)
    pth = tmp_path / "v.pth"
    torch.save(net.state_dict(), pth)
    pth.write_bytes(pth.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        read_state_dict(pth)


def test_safetensors_folder_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    models = {t: OpenUnmix.from_config(TINY).eval() for t in TINY.targets}
    save_model(tmp_path, TINY, UMX(models))
    config, loaded = read_folder(tmp_path)
    assert config == TINY
    x = torch.rand(1, 2, TINY.nb_bins, 7)
    for target in TINY.targets:
        assert torch.equal(models[target](x), loaded.branches[target](x))


def test_upstream_folder_with_separator_json(tmp_path, openunmix):
    config = CONFIGS["umxhq"].with_(hidden_size=64, n_hop=512)
    states = reference_state_dicts(openunmix, config, legacy=False)
    for target, sd in states.items():
        torch.save(sd, tmp_path / f"{target}.pth")
    (tmp_path / "separator.json").write_text(
        '{"nb_channels": 2, "nfft": 4096, "nhop": 512, "sample_rate": 44100.0}'
    )
    got, _model = read_folder(tmp_path)
    assert got.targets == ("vocals", "drums", "bass", "other")
    assert (got.n_hop, got.hidden_size, got.max_bin) == (512, 64, 1487)


def test_infer_config_recognises_released_shapes(openunmix):
    for name in ("umxhq", "umxse"):
        config = CONFIGS[name]
        states = reference_state_dicts(openunmix, config.with_(targets=config.targets[:1]))
        got = infer_config(states)
        assert (
            got.sample_rate,
            got.n_fft,
            got.n_hop,
            got.nb_channels,
            got.hidden_size,
            got.max_bin,
        ) == (
            config.sample_rate,
            config.n_fft,
            config.n_hop,
            config.nb_channels,
            config.hidden_size,
            config.max_bin,
        )


def test_unidirectional_model_round_trip(tmp_path):
    config = TINY.with_(unidirectional=True, nb_layers=2)
    net = OpenUnmix.from_config(config)
    assert net.lstm.hidden_size == 32 and not net.lstm.bidirectional
    save_model(tmp_path, config, UMX({t: net for t in config.targets}))
    got, _ = read_folder(tmp_path)
    assert got.unidirectional and got.nb_layers == 2
