"""unmix.metrics against museval 0.4.1 (the oracle), on real music and synthetic signals."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unmix import audio
from unmix.metrics import (
    MetricsInputError,
    bss_eval_v4,
    framewise_sdr,
    nb_windows,
    usdr,
    window_bounds,
)
from unmix.metrics import correlation as corr_mod
from unmix.metrics.correlation import lagged_xcorr

HALF_SECOND = 22050  # windows of 0.5 s: several windows from a few seconds of audio


@pytest.fixture(scope="module")
def stems(stem_track: Path) -> np.ndarray:
    """Drums, bass, other, vocals of a MUSDB18-style AAC multitrack, 3.2 s:
    ``(4, nb_samples, 2)`` float64."""
    x, _ = audio.read_stems(stem_track, start=1.0, duration=3.2)
    return np.ascontiguousarray(x[1:].transpose(0, 2, 1), dtype=np.float64)


def _level(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(x**2, axis=(-2, -1), keepdims=True))


def _assert_close(ours: np.ndarray, theirs: np.ndarray, atol: float) -> None:
    """Same NaN and infinity pattern, finite values within ``atol`` dB."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=0, atol=atol)


def test_sdr_equals_museval_on_real_music(museval: types.ModuleType, stems: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    refs = stems[[0, 1, 3]].copy()  # drums, bass, vocals
    ests = np.empty_like(refs)
    ests[0] = refs[0] + 0.3 * _level(refs[0]) * rng.standard_normal(refs[0].shape)  # noisy copy
    ests[1] = 0.6 * refs[1] + 0.4 * refs[2]  # mixture with another stem
    ests[2] = refs[2] + 0.3 * stems[2]  # leak of a stem that is not scored
    ests[2, 2 * HALF_SECOND : 3 * HALF_SECOND] = 0  # a silent estimate window
    refs[1, 4 * HALF_SECOND : 5 * HALF_SECOND] = 0  # a silent reference window
    theirs = museval.evaluate(refs, ests, win=HALF_SECOND, hop=HALF_SECOND)
    ours = bss_eval_v4(refs, ests, HALF_SECOND, HALF_SECOND)
    assert ours.sdr.shape == (3, 6)
    _assert_close(ours.sdr, theirs[0], atol=1e-6)
    assert np.isnan(ours.sdr[:, [2, 4]]).all() and np.isfinite(ours.sdr[:, [0, 1, 3, 5]]).all()
    _assert_close(framewise_sdr(refs, ests, HALF_SECOND, HALF_SECOND), theirs[0], atol=1e-6)
    # ISR/SIR/SAR on band-limited AAC stems rest on an ill-conditioned system: museval
    # itself moves by ~0.01 dB when the references change by 1e-9 (docs/evaluation.md)
    for k in (1, 2, 3):
        _assert_close(ours[k], theirs[k], atol=0.1)


@pytest.mark.parametrize("kind", ["real stems + full-band noise", "synthetic"])
def test_all_metrics_equal_museval_when_well_conditioned(
    museval: types.ModuleType, stems: np.ndarray, kind: str
) -> None:
    rng = np.random.default_rng(1)
    if kind == "synthetic":
        refs = rng.standard_normal((2, 2 * 44100 + 777, 2))
        refs[1] *= 0.3
        refs[1, :, 1] = 0.5 * refs[1, :, 0]  # correlated channels
    else:  # independent noise 40 dB down makes the Gram matrix well conditioned
        refs = stems[[3, 0]] + 0.01 * _level(stems[[3, 0]]) * rng.standard_normal(
            stems[[3, 0]].shape
        )
    ests = 0.8 * refs + 0.2 * refs[::-1] + 0.1 * _level(refs) * rng.standard_normal(refs.shape)
    ests[0, 100:] += 0.3 * refs[0, :-100]  # a delayed copy: spatial distortion
    theirs = museval.evaluate(refs, ests, win=HALF_SECOND, hop=HALF_SECOND)
    ours = bss_eval_v4(refs, ests, HALF_SECOND, HALF_SECOND)
    for k in range(4):
        _assert_close(ours[k], theirs[k], atol=0.01)
        np.testing.assert_allclose(ours[k], theirs[k], rtol=0, atol=1e-6)


def test_whole_window_and_single_source_cases_equal_museval(museval: types.ModuleType) -> None:
    rng = np.random.default_rng(2)
    refs = rng.standard_normal((1, 9000, 2))  # one source, shorter than one window
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    theirs = museval.evaluate(refs, ests, win=44100, hop=44100)
    ours = bss_eval_v4(refs, ests)
    for k in range(4):  # one window covering everything; SIR is +inf (no interference)
        _assert_close(ours[k], theirs[k], atol=1e-6)
    assert ours.sir[0, 0] == np.inf and ours.sdr.shape == (1, 1)


def test_silent_source_raises_like_museval(museval: types.ModuleType, stems: np.ndarray) -> None:
    refs = stems[:2]
    ests = refs.copy()
    ests[1] = 0
    with pytest.raises(ValueError):
        museval.evaluate(refs, ests)
    with pytest.raises(MetricsInputError, match=r"estimate source\(s\) \[1\] are silent"):
        bss_eval_v4(refs, ests)
    ests[1, :, 0], ests[1, :, 1] = 0.5, -0.5  # L = -R: silent by the channel-sum rule
    with pytest.raises(MetricsInputError, match="silent"):
        bss_eval_v4(refs, ests)
    # the SDR-only mode is lenient: the windows are NaN
    assert np.isnan(framewise_sdr(refs, ests)).all()


def test_framing_equals_museval(museval: types.ModuleType) -> None:
    for n, window, hop in [(300032, 44100, 44100), (44100, 44100, 44100), (44099, 44100, 44100),
                           (100000, 30000, 15000), (10, 3, 4)]:  # fmt: skip
        framer = museval.metrics.Framing(window, hop, n)
        expected = [(s.start, s.stop) for s in framer]
        assert nb_windows(n, window, hop) == len(expected) == framer.nwin
        assert window_bounds(n, window, hop) == expected


def test_regularized_variant_is_stable_and_opt_in(stems: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    refs = stems[[0, 3]]
    ests = refs + 0.1 * refs[::-1] + 0.05 * _level(refs) * rng.standard_normal(refs.shape)
    nudged = refs + 1e-9 * rng.standard_normal(refs.shape)
    reg = 10**-4.5  # like independent white noise 45 dB down in every reference
    a = bss_eval_v4(refs, ests, HALF_SECOND, HALF_SECOND, regularization=reg)
    b = bss_eval_v4(nudged, ests, HALF_SECOND, HALF_SECOND, regularization=reg)
    for k in range(4):
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-5)
    # a 0.1 leak is an SIR of about 20 dB once the system is well posed
    assert 15 < np.median(a.sir) < 25
    default = bss_eval_v4(refs, ests, HALF_SECOND, HALF_SECOND)
    np.testing.assert_allclose(default.sdr, a.sdr, rtol=0, atol=1e-9)  # SDR never changes
    assert not np.allclose(default.sir, a.sir, atol=0.01)


def test_framewise_sdr_is_the_windowed_snr() -> None:
    rng = np.random.default_rng(4)
    refs = rng.standard_normal((2, 1000, 2)).astype(np.float32)
    ests = refs + rng.standard_normal(refs.shape).astype(np.float32)
    scores = framewise_sdr(refs, ests, window=300, hop=200)
    r, e = refs.astype(np.float64), ests.astype(np.float64)
    for t, (a, b) in enumerate(window_bounds(1000, 300, 200)):
        want = 10 * np.log10(
            np.sum(r[:, a:b] ** 2, axis=(1, 2)) / np.sum((e - r)[:, a:b] ** 2, axis=(1, 2))
        )
        np.testing.assert_allclose(scores[:, t], want, rtol=1e-12)
    exact = framewise_sdr(refs, refs, 300, 200)
    assert np.isposinf(exact).all()


@settings(max_examples=25, deadline=None)
@given(
    nb_src=st.integers(1, 3),
    nb_ch=st.integers(1, 3),
    n=st.integers(50, 700),
    window=st.integers(20, 300),
    hop=st.integers(10, 300),
    seed=st.integers(0, 2**16),
)
def test_bsseval_sdr_equals_framewise_sdr(
    nb_src: int, nb_ch: int, n: int, window: int, hop: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((nb_src, n, nb_ch))
    ests = refs + rng.standard_normal(refs.shape)
    full = bss_eval_v4(refs, ests, window, hop, filters_len=16)
    assert full.sdr.shape == (nb_src, nb_windows(n, window, hop))
    np.testing.assert_allclose(full.sdr, framewise_sdr(refs, ests, window, hop), atol=1e-9)


def test_float32_and_mono_inputs() -> None:
    rng = np.random.default_rng(5)
    refs = rng.standard_normal((2, 20000))  # 2-D: mono
    ests = refs + 0.5 * rng.standard_normal(refs.shape)
    a = bss_eval_v4(refs, ests, 5000, 5000)
    b = bss_eval_v4(
        refs.astype(np.float32)[..., None], ests.astype(np.float32)[..., None], 5000, 5000
    )
    for k in range(4):
        np.testing.assert_allclose(a[k], b[k], atol=1e-4)


@pytest.mark.parametrize(
    ("est_shape", "what"),
    [((2, 900, 2), "lengths"), ((2, 1000, 1), "channel counts"), ((3, 1000, 2), "source counts")],
)
def test_mismatched_shapes_name_both(est_shape: tuple[int, ...], what: str) -> None:
    refs = np.ones((2, 1000, 2))
    for fn in (bss_eval_v4, framewise_sdr, usdr):
        with pytest.raises(MetricsInputError) as err:
            fn(refs, np.ones(est_shape))
        message = str(err.value)
        assert "(2, 1000, 2)" in message and str(est_shape) in message and what in message


def test_bad_inputs_are_refused() -> None:
    refs = np.ones((2, 1000, 2))
    bad = refs.copy()
    bad[0, 3, 0] = np.nan
    with pytest.raises(MetricsInputError, match="NaN"):
        bss_eval_v4(refs, bad)
    with pytest.raises(MetricsInputError, match="shaped"):
        framewise_sdr(np.ones((2, 3, 4, 5)), np.ones((2, 3, 4, 5)))
    with pytest.raises(MetricsInputError, match="window"):
        framewise_sdr(refs, refs, window=0)
    with pytest.raises(MetricsInputError, match="hop"):
        bss_eval_v4(refs, refs, hop=1.5)  # type: ignore[arg-type]
    with pytest.raises(MetricsInputError, match="empty"):
        usdr(np.ones((2, 0, 2)), np.ones((2, 0, 2)))


def test_usdr_is_the_global_sdr() -> None:
    rng = np.random.default_rng(6)
    refs = rng.standard_normal((3, 5000, 2))
    ests = refs + 0.3 * rng.standard_normal(refs.shape)
    num = np.sum(refs**2, axis=(1, 2)) + 1e-7
    den = np.sum((refs - ests) ** 2, axis=(1, 2)) + 1e-7
    np.testing.assert_allclose(usdr(refs, ests), 10 * np.log10(num / den), rtol=1e-12)
    silent = np.zeros((1, 100, 2))
    assert usdr(silent, silent)[0] == 0.0  # the regulariser makes silence 0 dB, not NaN


@pytest.mark.parametrize("n", [50, 40000])
def test_lagged_correlations_are_exact(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(corr_mod, "BLOCKS_PER_CHUNK", 2)  # several chunks of blocks
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, n, 2))
    y = rng.standard_normal((1, n, 2)).astype(np.float32)
    lag = 600
    got = lagged_xcorr([x, y], [y], lag)
    rows_x = np.concatenate([x, y]).transpose(0, 2, 1).reshape(6, n)
    rows_y = y.astype(np.float64).transpose(0, 2, 1).reshape(2, n)
    for p in range(6):
        for q in range(2):
            full = np.correlate(np.pad(rows_y[q], lag), rows_x[p], mode="valid")  # lags -lag..lag
            np.testing.assert_allclose(got[p, q], full, rtol=0, atol=1e-9 * n)
