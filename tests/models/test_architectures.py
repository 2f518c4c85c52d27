"""The model contract and the architecture table (issue 13): one wrapper per architecture,
official state-dict names, target selection as a model hook, a torch-free table."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from unmix.config import ModelConfig
from unmix.errors import UnmixError
from unmix.filtering import WienerSettings
from unmix.hub.folders import read_folder
from unmix.hub.loading import load_separator, save_model
from unmix.hub.weights import load_into
from unmix.models.architectures import ARCHITECTURES, get_architecture
from unmix.models.contract import SeparationModel
from unmix.models.umx import OpenUnmix
from unmix.models.xumx import XUMX
from unmix.separator import Separator

from ..helpers import randomize

TINY = ModelConfig(n_fft=256, n_hop=64, hidden_size=16, nb_layers=2, max_bin=80)


def _random(arch: str, seed: int = 0) -> SeparationModel:
    config = TINY.with_(arch=arch)
    model = get_architecture(arch).build(config)
    for k, target in enumerate(config.targets):
        randomize(model.get_submodule(f"branches.{target}"), seed + k)
    return model.eval()


def test_table_names_every_architecture_and_refuses_others():
    assert set(ARCHITECTURES) == {"umx", "xumx"}
    for name, arch in ARCHITECTURES.items():
        model = arch.build(TINY.with_(arch=name))
        assert isinstance(model, SeparationModel) and model.targets == TINY.targets
    with pytest.raises(UnmixError, match="unknown architecture 'tcn'; known: umx, xumx"):
        get_architecture("tcn")
    with pytest.raises(UnmixError, match="arch must be one of"):
        TINY.with_(arch="tcn")


def test_config_and_table_do_not_import_torch():
    code = (
        "import sys, unmix.config, unmix.models.architectures, unmix.hub.registry; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("arch", ["umx", "xumx"])
def test_every_model_maps_a_magnitude_to_one_per_target(arch):
    model = _random(arch, 3)
    x = torch.rand(2, 2, TINY.nb_bins, 9)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 2, TINY.nb_bins, 9, 4)
    assert (y >= 0).all()


def test_umx_branches_keep_the_official_names_and_load_strictly():
    model = _random("umx", 1)
    net = OpenUnmix.from_config(TINY)
    assert list(model.get_submodule("branches.drums").state_dict()) == list(net.state_dict())
    load_into(net, model.get_submodule("branches.drums").state_dict(), "test")
    x = torch.rand(1, 2, TINY.nb_bins, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[..., 1], net.eval()(x), atol=1e-6, rtol=1e-5)


def test_umx_runs_its_branches_side_by_side_with_the_same_result():
    model = _random("umx", 2)
    x = torch.rand(1, 2, TINY.nb_bins, 7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            one = model(x)
        torch.set_num_threads(2)
        with torch.no_grad():
            two = model(x)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, two, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ["umx", "xumx"])
def test_select_targets_is_the_matching_slice_and_shares_weights(arch):
    model = _random(arch, 4)
    sub = model.select_targets(["bass", "vocals"])
    assert sub.targets == ("bass", "vocals")
    x = torch.rand(1, 2, TINY.nb_bins, 6)
    with torch.no_grad():
        torch.testing.assert_close(sub(x), model(x)[..., [2, 0]], atol=1e-6, rtol=1e-5)
    assert sub.get_submodule("branches.bass") is model.get_submodule("branches.bass")
    with pytest.raises(UnmixError, match="unknown targets"):
        model.select_targets(["piano"])
    with pytest.raises(UnmixError, match="distinct"):
        model.select_targets(["bass", "bass"])


def test_xumx_keeps_every_branch_when_selecting():
    sub = _random("xumx").select_targets(["vocals"])
    assert isinstance(sub, XUMX) and list(sub.branches) == list(TINY.targets)


def test_set_input_statistics_reaches_every_branch():
    mean, std = torch.rand(TINY.nb_bins), 1 + torch.rand(TINY.nb_bins)
    for arch in ARCHITECTURES:
        model = _random(arch)
        model.set_input_statistics(mean, std)
        for target in TINY.targets:
            branch = model.get_submodule(f"branches.{target}")
            assert torch.equal(branch.input_mean, -mean[:80])
            assert torch.equal(branch.input_scale, 1 / std[:80])


def test_training_units_and_weight_files_follow_the_table():
    umx, xumx = get_architecture("umx"), get_architecture("xumx")
    units = umx.training_units(TINY)
    assert [(u.name, u.module, u.indices) for u in units][:2] == [
        ("vocals", "branches.vocals", (0,)),
        ("drums", "branches.drums", (1,)),
    ]
    (joint,) = xumx.training_units(TINY.with_(arch="xumx"))
    assert (joint.name, joint.module, joint.indices) == ("xumx", "", (0, 1, 2, 3))
    assert umx.weight_files(TINY) == {t: f"branches.{t}" for t in TINY.targets}
    assert xumx.weight_files(TINY) == {"xumx": ""}
    assert type(units[0].objective(TINY)).__name__ == "SpectrogramMSE"
    assert type(joint.objective(TINY)).__name__ == "XUMXLoss"


@pytest.mark.parametrize("arch", ["umx", "xumx"])
def test_save_and_load_round_trip_through_the_table(tmp_path, arch):
    config = TINY.with_(arch=arch)
    model = _random(arch, 5)
    save_model(tmp_path, config, model)
    stems = sorted(p.stem for p in tmp_path.glob("*.safetensors"))
    assert stems == sorted(get_architecture(arch).weight_files(config))
    got_config, got = read_folder(tmp_path)
    assert got_config == config and type(got) is type(model)
    for a, b in zip(got.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_save_model_writes_one_unit_at_a_time(tmp_path):
    save_model(tmp_path, TINY, _random("umx"), files=["drums"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "drums.safetensors"]


def test_separator_takes_any_model_and_never_looks_at_the_architecture(tmp_path):
    for arch in ARCHITECTURES:
        config = TINY.with_(arch=arch)
        sep = Separator(_random(arch, 6), config, WienerSettings(niter=1)).freeze()
        x = 0.1 * torch.randn(1, 2, 4000)
        with torch.no_grad():
            stems = sep(x)
        assert stems.shape == (1, 4, 2, 4000) and sep.output_names == config.targets
        save_model(tmp_path / arch, config, sep.model)
        loaded = load_separator(tmp_path / arch, device="cpu", wiener=sep.wiener)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), stems, atol=1e-5, rtol=1e-4)
