"""Ensembles (``--model a+b``): one member is that model, ``a+a`` is ``a``, weights per
target, members that do not fit, segments aligned to every member, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unmix import audio as audio_io
from unmix.cli import main
from unmix.commands.common import model_label, model_source
from unmix.engine import segments
from unmix.ensemble import Ensemble, ensemble_parts, parse_weights
from unmix.errors import UnmixError
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator, save_model
from unmix.realtime import StreamSeparator

from .test_shifts import sdr, tiny_separator

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]

PAIR = "umx-preview+umx-rt-preview"


@pytest.fixture(scope="module")
def music(clip: Path) -> np.ndarray:
    return audio_io.read(clip)[0]


@pytest.fixture(scope="module")
def x(music: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(music[:, : 2 * 44100])[None]


def test_an_ensemble_of_one_is_that_model(x):
    sep = tiny_separator(seed=1)
    with torch.inference_mode():
        assert torch.equal(Ensemble([sep])(x), sep(x))


def test_a_plus_a_is_a(x):
    single = load_separator("umx-rt-preview", device="cpu", progress=False)
    double = load_separator("umx-rt-preview+umx-rt-preview", device="cpu", progress=False)
    assert isinstance(double, Ensemble) and double.names == ("umx-rt-preview",) * 2
    with torch.inference_mode():
        assert torch.equal(double(x), single(x))


def test_weights_per_target_are_applied_and_the_residual_keeps_the_sum(x):
    wiener = WienerSettings(residual=True, wiener_win_len=20)
    a, b = tiny_separator(seed=1), tiny_separator(seed=9)
    a.wiener = b.wiener = wiener
    ensemble = Ensemble([a, b], weights={"vocals": (3, 1), "bass": (0, 2)}, names=["a", "b"])
    assert ensemble.output_names == ("vocals", "drums", "bass", "other", "residual")
    with torch.inference_mode():
        got, sa, sb = ensemble(x)[0], a(x)[0], b(x)[0]
    expected = {"vocals": 0.75 * sa[0] + 0.25 * sb[0], "drums": (sa[1] + sb[1]) / 2,
                "bass": sb[2], "other": (sa[3] + sb[3]) / 2}  # fmt: skip
    for j, name in enumerate(ensemble.targets):
        torch.testing.assert_close(got[j], expected[name], rtol=0, atol=1e-6)
    # every member's stems add up to its mixture estimate; the ensemble's add up to their mean
    torch.testing.assert_close(got.sum(0), (sa.sum(0) + sb.sum(0)) / 2, rtol=0, atol=1e-5)
    record = ensemble.settings_record()
    assert record["ensemble"] == ["a", "b"]
    assert record["ensemble_weights"]["vocals"] == [0.75, 0.25]
    assert record["ensemble_weights"]["residual"] == [0.5, 0.5]
    assert "ensemble_weights" not in Ensemble([a, b], weights=[1, 1]).settings_record()


def test_one_weight_list_for_every_target(x):
    a, b = tiny_separator(seed=1), tiny_separator(seed=9)
    with torch.inference_mode():
        got, sa = Ensemble([a, b], weights=[1, 0])(x), a(x)
    torch.testing.assert_close(got, sa, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"piano": (1, 1)}, r"ensemble weights for 'piano': not a target of this ensemble"),
        ({"vocals": (1, 1, 1)}, r"ensemble weights for vocals: need 2 numbers >= 0"),
        ({"vocals": (-1, 2)}, r"need 2 numbers >= 0 \(one per member, not all 0\), got -1,2"),
        ({"vocals": (0, 0)}, r"not all 0"),
        ({"vocals": (float("nan"), 1)}, r"need 2 numbers"),
    ],
)
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(UnmixError, match=message):
        Ensemble([tiny_separator(), tiny_separator(seed=4)], weights=weights)


def test_members_must_share_rate_and_targets():
    a = tiny_separator()
    slow = tiny_separator(sample_rate=16000)
    with pytest.raises(
        UnmixError, match="must share a sample rate: a runs at 44100 Hz, b at 16000"
    ):
        Ensemble([a, slow], names=["a", "b"])
    vocals_only = tiny_separator()
    vocals_only.targets = ("vocals",)
    with pytest.raises(UnmixError, match=r"must separate the same targets: .*choose common ones"):
        Ensemble([a, vocals_only])
    with pytest.raises(UnmixError, match="at least one member"):
        Ensemble([])


def test_members_in_another_order_are_reordered(x):
    a = tiny_separator(seed=2)
    b = tiny_separator(seed=2)
    b.model = b.model.select_targets(["other", "bass", "drums", "vocals"])
    b.targets = b.model.targets
    with torch.inference_mode():
        torch.testing.assert_close(Ensemble([a, b])(x), a(x), rtol=0, atol=1e-6)


def test_names_and_weights_are_parsed(tmp_path):
    assert ensemble_parts("umx-preview") == ["umx-preview"]
    assert ensemble_parts(PAIR) == ["umx-preview", "umx-rt-preview"]
    folder = tmp_path / "my+model"
    folder.mkdir()
    assert ensemble_parts(folder) == [str(folder)]  # an existing path is one model
    with pytest.raises(UnmixError, match="empty ensemble member"):
        ensemble_parts("umx-preview++umx")
    with pytest.raises(UnmixError, match="at most 8 members"):
        ensemble_parts("+".join(["umx"] * 9))
    assert parse_weights(["2,1"]) == (2.0, 1.0)
    assert parse_weights(["vocals=2,1", "bass=0,1"]) == {"vocals": (2.0, 1.0), "bass": (0.0, 1.0)}
    for bad, message in [
        (["vocals=2,x"], "expected numbers per member"),
        (["vocals=1,2", "vocals=2,1"], "name each target once"),
        (["2,1", "vocals=1,1"], "not both"),
    ]:
        with pytest.raises(UnmixError, match=message):
            parse_weights(bad)
    with pytest.raises(UnmixError, match="ensemble weights need an ensemble"):
        load_separator("umx-preview", weights=[1])


def test_labels_and_sources_of_ensembles(tmp_path):
    (tmp_path / "mine").mkdir()
    assert model_label(PAIR) == PAIR
    assert model_label(f"{tmp_path / 'mine'}+umx-preview") == "mine+umx-preview"
    assert model_source(f"{tmp_path / 'mine'}+umx") == f"{(tmp_path / 'mine').resolve()}+umx"


def test_segments_align_to_every_member_and_equal_whole_processing(music):
    """Members with hops 1024 and 768: plans step in multiples of lcm(1024, 768) ·
    wiener_win_len, and short segments give the whole-track stems up to the cross-fades
    (above the 30-dB bar of tests/engine/test_segments.py: 55-58 dB), shifts
    included (fractions of gcd(1024, 768))."""
    wide = tiny_separator(seed=11)
    narrow = tiny_separator(seed=21, n_fft=3072, n_hop=768, max_bin=1115)
    ensemble = Ensemble([wide, narrow], shifts=2)
    assert ensemble.hops == (1024, 768) and ensemble.shift_offsets == (0, 128)
    assert ensemble.config.n_fft == 4096  # short audio is padded for the widest member
    plan = segments.plan_segments(ensemble, segment_seconds=3.0, overlap_seconds=1.0)
    assert plan.step == 3072 * 20 and plan.overlap == 14 * 3072
    x = np.tile(music, 2)[:, : 6 * 44100]
    assert plan.nb_segments(x.shape[1]) == 4
    whole = segments.separate_segment(ensemble, x)
    segmented = segments.separate_long(ensemble, x, plan)
    for j, name in enumerate(ensemble.output_names):
        assert sdr(whole[j], segmented[j]) >= 40.0, name  # misaligned by 1 hop: ~28 dB


def test_cli_end_to_end_on_the_bundled_clip(capsys, tmp_path, clip, music):
    args = ["separate", str(clip), "-n", PAIR, "-o", str(tmp_path), "-q"]
    assert main([*args, "--ensemble-weights", "vocals=3,1"]) == 0
    folder = tmp_path / PAIR / "nightowl-preview"
    stems = {n: audio_io.read(folder / f"{n}.wav")[0] for n in ("vocals", "drums", "bass", "other")}
    record = json.loads((folder / ".unmix.json").read_text())["files"]["vocals.wav"]
    assert record["model"] == PAIR and record["ensemble"] == ["umx-preview", "umx-rt-preview"]
    assert record["ensemble_weights"]["vocals"] == [0.75, 0.25]
    members = [load_separator(m, device="cpu", progress=False) for m in PAIR.split("+")]
    with torch.inference_mode():
        a, b = (m(torch.from_numpy(music)[None])[0].numpy() for m in members)
    np.testing.assert_allclose(stems["vocals"], 0.75 * a[0] + 0.25 * b[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(stems["bass"], (a[2] + b[2]) / 2, rtol=0, atol=1e-5)
    capsys.readouterr()
    assert main(args) == 1  # equal weights now: refused, the folder holds the weighted stems
    assert "ensemble_weights {'bass': [0.5, 0.5]" in capsys.readouterr().err


def test_cli_refuses_members_that_do_not_fit(capsys, tmp_path, clip):
    slow = tiny_separator(sample_rate=16000)
    folder = save_model(tmp_path / "slow", slow.config, slow.model)
    out = tmp_path / "out"
    code = main(["separate", str(clip), "-n", f"umx-rt-preview+{folder}", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.endswith(
        f"ensemble members must share a sample rate: umx-rt-preview runs at 44100 Hz, "
        f"{folder} at 16000 Hz"
    )
    assert len(err.splitlines()) == 1
    assert not list(out.rglob("*.wav"))


def test_export_and_stream_refuse_ensembles(capsys, tmp_path):
    with pytest.raises(UnmixError, match=r"ensembles \(umx-rt-preview\+umx-rt-preview\) are for"):
        StreamSeparator("umx-rt-preview+umx-rt-preview")
    code = main(["export", "--model", PAIR, "--out", str(tmp_path / "pair.onnx")])
    assert code != 0 and "unmix export runs one model" in capsys.readouterr().err
    assert not (tmp_path / "pair.onnx").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ensemble_and_shifts_on_cuda_equal_the_cpu(x):
    """Members on the GPU, the weights follow the stems' device (the same arithmetic runs on
    the CPU in every other test of this file)."""
    on = {d: load_separator(PAIR, device=d, progress=False, shifts=2) for d in ("cpu", "cuda")}
    with torch.inference_mode():
        cpu, gpu = on["cpu"](x), on["cuda"](x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-4)
