"""Test-time shifts (``--shifts N``): offsets, N = 1 is plain separation, the average of
shifted copies, segments, records and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unmix import audio as audio_io
from unmix.api import separate
from unmix.cli import main
from unmix.config import CONFIGS
from unmix.engine import segments
from unmix.errors import UnmixError
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator
from unmix.models.umx import UMX, OpenUnmix
from unmix.realtime import StreamSeparator
from unmix.separator import Separator
from unmix.shifts import MAX_SHIFTS, average_shifted, check_shifts, shift_offsets

from .helpers import randomize

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]


def tiny_separator(seed: int = 0, shifts: int = 1, **config) -> Separator:
    """A small random-weight UMX (hidden size 16), Wiener windows of 20 frames."""
    cfg = CONFIGS["umxhq"].with_(hidden_size=16, **config)
    models = {}
    for k, target in enumerate(cfg.targets):
        net = OpenUnmix.from_config(cfg)
        randomize(net, seed + k)
        models[target] = net.freeze()
    wiener = WienerSettings(wiener_win_len=20)
    return Separator(UMX(models), cfg, wiener, shifts=shifts).freeze()


@pytest.fixture(scope="module")
def music(clip: Path) -> np.ndarray:
    """The bundled clip (6.8 s of real music, stereo 44.1 kHz)."""
    return audio_io.read(clip)[0]


def sdr(reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor) -> float:
    reference, estimate = np.asarray(reference), np.asarray(estimate)
    error = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(error, 1e-30)))


def test_offsets_are_fractions_of_the_hop_starting_at_zero():
    assert shift_offsets(1, 1024) == (0,)
    assert shift_offsets(2, 1024) == (0, 512)
    assert shift_offsets(4, 1024) == (0, 256, 512, 768)
    assert shift_offsets(3, 512) == (0, 171, 341)
    assert len(set(shift_offsets(MAX_SHIFTS, 512))) == MAX_SHIFTS


@pytest.mark.parametrize("bad", [0, -1, MAX_SHIFTS + 1, True, 1.5, "2"])
def test_bad_shifts_are_refused_in_one_line(bad):
    with pytest.raises(
        UnmixError, match=f"shifts must be a whole number from 1 .* to {MAX_SHIFTS}"
    ):
        check_shifts(bad)
    with pytest.raises(UnmixError, match="shifts must be"):
        tiny_separator(shifts=bad)


def test_more_shifts_than_hop_samples_are_refused():
    with pytest.raises(UnmixError, match="3 shifts need a hop of at least 3 samples"):
        shift_offsets(3, 2)


def test_one_shift_is_plain_separation_bit_for_bit(music):
    x = torch.from_numpy(music[:, : 3 * 44100])[None]
    plain = tiny_separator(seed=3)
    one = tiny_separator(seed=3, shifts=1)
    with torch.inference_mode():
        expected = plain.separate_once(x)
        assert torch.equal(one(x), expected)
        assert torch.equal(plain(x), expected)
    assert one.settings_record() == {}  # records of plain runs stay as they were


@pytest.mark.parametrize("shifts", [2, 3])
def test_shifts_average_the_manually_shifted_separations(music, shifts):
    x = torch.from_numpy(music[:, : 2 * 44100 + 77])[None]
    sep = tiny_separator(seed=5, shifts=shifts)
    length = x.shape[-1]
    with torch.inference_mode():
        got = sep(x)
        manual = [
            sep.separate_once(torch.cat([x.new_zeros(1, 2, o), x], dim=-1))[..., o : o + length]
            for o in sep.shift_offsets
        ]
    expected = torch.stack(manual).mean(0)
    assert got.shape == expected.shape == (1, 4, 2, length)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # the copies really differ (each sees another frame grid), so the average is new
    assert (manual[1] - manual[0]).abs().max() > 1e-3
    assert sep.settings_record() == {"shifts": shifts}


def test_average_of_identical_copies_is_the_copy():
    x = torch.randn(1, 2, 1000)
    twice = average_shifted(lambda a: a[:, None].repeat(1, 3, 1, 1), x, (0, 0))
    torch.testing.assert_close(twice, x[:, None].expand(-1, 3, -1, -1), rtol=0, atol=0)


def test_a_fraction_of_a_hop_changes_what_the_model_sees_a_whole_hop_does_not(music):
    """Why the offsets are fractions of the hop: a delay by one whole hop gives nearly the
    same stems (the same frames), a delay by half a hop clearly other ones (umx-preview)."""
    sep = load_separator("umx-preview", device="cpu", progress=False)
    x = torch.from_numpy(music)[None]
    length, inner = x.shape[-1], slice(8192, x.shape[-1] - 8192)

    def delayed(offset: int) -> torch.Tensor:
        padded = torch.nn.functional.pad(x, (offset, 0))
        return sep.separate_once(padded)[0, ..., offset : offset + length][..., inner]

    with torch.inference_mode():
        plain = sep(x)[0, ..., inner]
        whole_hop, half_hop = delayed(sep.config.n_hop), delayed(sep.config.n_hop // 2)
    for j, name in enumerate(sep.output_names):
        assert sdr(plain[j], whole_hop[j]) > sdr(plain[j], half_hop[j]) + 5, name


def test_segments_with_shifts_equal_whole_processing(music):
    """Offsets stay below one hop, so segment plans stay aligned for every copy: short
    segments give the whole-track stems up to the cross-fades (the same 30-dB bar as
    plain separation in tests/engine/test_segments.py)."""
    sep = tiny_separator(seed=7, shifts=2)
    x = np.tile(music, 2)[:, : 12 * 44100]
    plan = segments.plan_segments(sep, segment_seconds=4.0, overlap_seconds=1.0)
    assert plan.nb_segments(x.shape[1]) >= 3
    whole = segments.separate_segment(sep, x)
    segmented = segments.separate_long(sep, x, plan)
    for j, name in enumerate(sep.output_names):
        assert sdr(whole[j], segmented[j]) >= 30.0, name


def test_api_shifts(music):
    x = music[:, :44100]
    plain = separate(x, 44100, model="umx-rt-preview", device="cpu")
    two = separate(x, 44100, model="umx-rt-preview", device="cpu", shifts=2)
    sep = load_separator("umx-rt-preview", device="cpu", shifts=2)
    assert sep.shifts == 2 and sep.shift_offsets == (0, 256)
    with torch.inference_mode():
        direct = sep(torch.from_numpy(x)[None])[0].numpy()
    for j, name in enumerate(sep.output_names):
        np.testing.assert_allclose(two[name], direct[j], rtol=0, atol=1e-6)
        assert 15 < sdr(plain[name], two[name]) < 80, name


def test_cli_records_shifts_and_refuses_a_rerun_with_others(capsys, tmp_path, clip):
    args = ["separate", str(clip), "-n", "umx-rt-preview", "-o", str(tmp_path), "-q",
            "--duration", "2", "--targets", "vocals", "--residual"]  # fmt: skip
    assert main([*args, "--shifts", "2"]) == 0
    folder = tmp_path / "umx-rt-preview" / "nightowl-preview"
    record = json.loads((folder / ".unmix.json").read_text())["files"]["vocals.wav"]
    assert record["shifts"] == 2
    capsys.readouterr()
    assert main([*args, "--shifts", "2"]) == 0  # same settings: kept
    assert main(args) == 1  # other settings: refused, nothing mixed
    err = capsys.readouterr().err
    assert "was made with other settings (shifts 2 -> None)" in err
    assert main([*args, "--shifts", "3"]) == 1
    assert "shifts 2 -> 3" in capsys.readouterr().err


@pytest.mark.parametrize("shifts", ["0", "33"])
def test_cli_refuses_bad_shifts_before_any_work(capsys, tmp_path, clip, shifts):
    code = main(["separate", str(clip), "-o", str(tmp_path / "out"), "--shifts", shifts])
    assert code != 0
    assert f"--shifts must be 1 to {MAX_SHIFTS}, got {shifts}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_and_stream_refuse_shifts(tmp_path):
    sep = load_separator("umx-rt-preview", device="cpu", shifts=2)
    with pytest.raises(UnmixError, match="real-time separation runs one model once; --shifts 2"):
        StreamSeparator(sep)
    with pytest.raises(UnmixError, match="--shifts needs a torch model"):
        load_separator(tmp_path / "graph.onnx", shifts=2)


def test_evaluate_separates_with_shifts_and_an_ensemble(capsys, tmp_path, musdb_root):
    common = ["evaluate", "--root", str(musdb_root), "--subset", "train", "--split", "valid",
              "--tracks", "Actions - One Minute Smile", "--metrics", "sdr", "--no-plot",
              "--targets", "vocals"]  # fmt: skip
    args = ["--model", "umx-rt-preview+umx-rt-preview", "--shifts", "2"]
    assert main([*common, *args, "--out-dir", str(tmp_path / "a")]) == 0
    header = (tmp_path / "a" / "scores.md").read_text()
    assert "model umx-rt-preview+umx-rt-preview" in header and "shifts 2" in header
    assert main([*common, "--model", "umx-rt-preview", "--out-dir", str(tmp_path / "b")]) == 0
    # a+a is a: the ensemble's score moves only by what the shifts change
    shifted = (tmp_path / "a" / "scores.csv").read_text()
    plain = (tmp_path / "b" / "scores.csv").read_text()
    assert shifted != plain
