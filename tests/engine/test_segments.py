"""The segmented engine: plan alignment, cross-fade, whole-track equality and seams on music."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unmix import audio as audio_io
from unmix.api import separate_array
from unmix.config import CONFIGS
from unmix.engine import segments
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator
from unmix.models.umx import UMX, OpenUnmix
from unmix.separator import Separator

from ..helpers import randomize, reference_state_dicts
from ..test_separator_parity import _reference_separator, _write_official_layout, with_dither

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]


def _separator(config, seed: int = 0, **kwargs) -> Separator:
    models = {}
    for k, target in enumerate(config.targets):
        net = OpenUnmix.from_config(config)
        randomize(net, seed + k)
        models[target] = net.freeze()
    return Separator(UMX(models), config, WienerSettings(**kwargs)).freeze()


@pytest.fixture(scope="module")
def tiny() -> Separator:
    return _separator(CONFIGS["umxhq"].with_(hidden_size=16), wiener_win_len=20)


@pytest.fixture(scope="module")
def music(clip: Path) -> np.ndarray:
    """About 20 s of real music: the example clip three times back to back."""
    return np.tile(audio_io.read(clip)[0], 3)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-distortion ratio of ``estimate`` against ``reference`` (dB)."""
    error = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(error, 1e-30)))


def test_plan_is_aligned_to_hop_and_wiener_windows(tiny):
    plan = segments.plan_segments(tiny, segment_seconds=5.0, overlap_seconds=1.3)
    unit = tiny.config.n_hop * tiny.wiener.wiener_win_len
    assert plan.step % unit == 0
    assert plan.overlap % tiny.config.n_hop == 0
    assert plan.segment == plan.step + plan.overlap
    assert abs(plan.overlap / 44100 - 1.3) < 1024 / 44100
    whole = _separator(CONFIGS["umxhq"].with_(hidden_size=16), wiener_win_len=None)
    assert segments.plan_segments(whole, 5.0, 1.0).step % 1024 == 0
    assert plan.nb_segments(plan.segment) == 1
    assert plan.nb_segments(plan.segment + 1) == 2
    with pytest.raises(ValueError, match="overlap"):
        segments.plan_segments(tiny, 2.0, 3.0)


def test_crossfade_weights_sum_to_one_and_keep_mixture_sums():
    w = segments.fade_in(1000)
    assert w.min() > 0 and w.max() < 1 and np.all(np.diff(w) > 0)
    np.testing.assert_allclose(w + w[::-1], 1.0, atol=1e-6)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((2, 1000)).astype(np.float32)
    a = rng.standard_normal((3, 2, 1000)).astype(np.float32)
    b = rng.standard_normal((3, 2, 1000)).astype(np.float32)
    a[-1] = mix - a[:-1].sum(0)  # both estimates sum to the mixture ...
    b[-1] = mix - b[:-1].sum(0)
    np.testing.assert_allclose(
        segments.crossfade(a, b).sum(0), mix, atol=1e-5
    )  # ... so does the blend


@pytest.mark.parametrize("extra", [0, 1, 5000, 3 * 44100])
def test_stream_has_exact_length_and_whole_track_result_for_one_segment(tiny, music, extra):
    plan = segments.SegmentPlan(segment=4 * 44100, overlap=44100)
    x = music[:, : plan.segment + extra]
    engine = segments.StreamingSeparator(tiny, plan)
    parts = []
    for pos in range(0, x.shape[1], 7777):  # decoder-sized blocks
        parts += engine.push(x[:, pos : pos + 7777])
    parts += engine.finish()
    stems = np.concatenate(parts, axis=-1)
    assert stems.shape == (4, 2, x.shape[1])
    assert engine.segments_done == plan.nb_segments(x.shape[1])
    if not extra:  # exactly one segment: one Separator call on the whole input
        with torch.inference_mode():
            whole = tiny(torch.from_numpy(x)[None])[0].numpy()
        assert np.array_equal(stems, whole)


def test_audio_shorter_than_one_fft_frame(tiny):
    x = np.random.default_rng(1).standard_normal((2, 700)).astype(np.float32) * 0.1
    stems = segments.separate_long(tiny, x)
    assert stems.shape == (4, 2, 700)
    assert np.isfinite(stems).all()


def test_one_segment_matches_reference_implementation(openunmix, tmp_path, music):
    """A file no longer than one segment gives the reference's whole-track stems (≤ 1e-4)."""
    config = CONFIGS["umxhq"]
    states = reference_state_dicts(openunmix, config, seed=20)
    _write_official_layout(tmp_path, states)
    ours = load_separator(tmp_path, device="cpu", wiener=WienerSettings(niter=1))
    ref = _reference_separator(openunmix, config, states, niter=1, wiener_win_len=300)
    x = with_dither(music[:, : 3 * 44100])
    stems = separate_array(ours, x, 44100)  # the public streaming path
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)[None])[0].numpy()
    got = np.stack([stems[name] for name in ours.output_names])
    assert np.abs(got - expected).max() <= 1e-4


def test_segmented_matches_whole_track_on_music(music):
    """Seams are inaudible: segmented vs whole-track SDR far above 30 dB on real music
    (umxhq-sized random-weight models, short segments to keep the test fast)."""
    sep = _separator(CONFIGS["umxhq"], seed=30, niter=1, wiener_win_len=100)
    x = music[:, : 16 * 44100]
    plan = segments.plan_segments(sep, segment_seconds=8.0, overlap_seconds=2.0)
    assert plan.nb_segments(x.shape[1]) == 3
    whole = segments.separate_segment(sep, x)
    segmented = segments.separate_long(sep, x, plan)
    for j, name in enumerate(sep.output_names):
        assert sdr(whole[j], segmented[j]) >= 30.0, name
    # the cross-fade keeps the sum of the stems: it is as close to the mixture as the
    # whole-track sum (which the Wiener regulariser √eps limits, as in the reference)
    assert sdr(x, segmented.sum(0)) >= sdr(x, whole.sum(0)) - 0.5


def test_networks_side_by_side_give_the_same_stems(tiny, music):
    """With several CPU threads the target networks run in parallel worker threads (one
    thread each); the stems are those of running them one after the other."""
    x = torch.from_numpy(music[:, : 2 * 44100])[None]
    with torch.inference_mode():
        one = tiny(x)
        torch.set_num_threads(2)
        two = tiny(x)
        assert torch.get_num_threads() == 2
    with torch.no_grad():
        grad_mode = tiny(x)
    assert torch.equal(one, two) and torch.equal(one, grad_mode)
