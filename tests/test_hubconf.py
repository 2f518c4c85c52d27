"""``hubconf.py`` (issue 18 item 7): ``torch.hub.load`` entry points named and called as
openunmix's, returning the same separator and networks as unmix's own loaders."""

from __future__ import annotations

import importlib.util
import inspect
import types
from pathlib import Path

import pytest
import torch

from unmix.filtering import WienerSettings
from unmix.hub.loading import load_model, load_separator
from unmix.models.umx import OpenUnmix

from .fixtures import decode

REPO = Path(__file__).resolve().parents[1]


def _hub(name: str, **kwargs: object) -> object:
    return torch.hub.load(str(REPO), name, source="local", trust_repo=True, **kwargs)


def test_every_openunmix_entry_point_exists_with_its_arguments(
    openunmix: types.ModuleType,
) -> None:
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    assert spec is not None and spec.loader is not None
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entries = {n for n, f in vars(hubconf).items() if callable(f) and not n.startswith("_")}
    for name in ("umxhq", "umx", "umxl", "umxse"):
        assert name in entries and f"{name}_spec" in entries
        ours = inspect.signature(getattr(hubconf, name)).parameters
        theirs = inspect.signature(getattr(openunmix, name)).parameters
        assert set(theirs) - {"filterbank"} <= set(ours)
    assert {"xumx", "umx_preview", "umx_preview_spec", "umx_preview2"} <= set(entries)


def test_the_hub_separator_is_load_separator(clip: Path) -> None:
    audio = torch.from_numpy(decode(clip)[:, : 3 * 44100]).unsqueeze(0)
    hub = _hub("umx_preview", device="cpu", niter=1, residual=True)
    ours = load_separator("umx-preview", device="cpu")
    assert hub.output_names == (*ours.output_names, "residual")
    with torch.no_grad():
        got = hub(audio)
        want = load_separator("umx-preview", device="cpu", wiener=WienerSettings(residual=True))(
            audio
        )
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_the_spec_models_load_into_openunmix(openunmix: types.ModuleType) -> None:
    config, model = load_model("umx-preview")
    spec = _hub("umx_preview_spec", targets=["vocals", "bass"])
    assert list(spec) == ["vocals", "bass"]
    for target, net in spec.items():
        assert isinstance(net, OpenUnmix)
        assert all(
            torch.equal(a, b)
            for a, b in zip(
                net.state_dict().values(),
                model.branches[target].state_dict().values(),
                strict=True,
            )
        )
        reference = openunmix.model.OpenUnmix(
            nb_bins=config.n_fft // 2 + 1,
            nb_channels=config.nb_channels,
            hidden_size=config.hidden_size,
            max_bin=config.max_bin,
        )
        reference.load_state_dict(net.state_dict(), strict=True)


def test_untrained_models_need_no_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNMIX_HOME", str(tmp_path))
    monkeypatch.setenv("UNMIX_OFFLINE", "1")
    separator = _hub("umxhq", pretrained=False, targets=["vocals"], residual=True)
    assert separator.output_names == ("vocals", "residual")
    assert set(_hub("xumx_spec", pretrained=False)) == {"xumx"}
    assert not any(tmp_path.iterdir())
