"""Short inputs: the paths made cheap for them (even window chunks, one-thread in-place
sums, the packed Schur factor, compact own-reference responses) still give museval's
numbers, on stereo, mono, silent-window and single-window inputs."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest

from unmix.metrics import bss_eval_v4
from unmix.metrics import bsseval as bsseval_mod
from unmix.metrics.bsseval import WINDOWS_PER_CHUNK, even_chunks

HALF_SECOND = 22050


def _signals(kind: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Well-conditioned references (full-band, correlated channels), estimates with a
    leak, noise and a delayed copy, and the window: ``(refs, ests, window)``."""
    rng = np.random.default_rng(11)
    nb_ch = 1 if kind == "mono" else 2
    n = 9000 if kind == "single window" else 5 * HALF_SECOND + 4321  # 5 windows + a rest
    refs = rng.standard_normal((2, n, nb_ch))
    refs[1] *= 0.4
    if nb_ch == 2:
        refs[0, :, 1] += 0.5 * refs[0, :, 0]
    ests = 0.8 * refs + 0.2 * refs[::-1] + 0.1 * rng.standard_normal(refs.shape)
    ests[0, 100:] += 0.3 * refs[0, :-100]  # a delayed copy: spatial distortion
    if kind == "silent window":
        refs[1, 2 * HALF_SECOND : 3 * HALF_SECOND] = 0
    window = 44100 if kind == "single window" else HALF_SECOND
    return refs, ests, window


@pytest.mark.parametrize("kind", ["stereo", "mono", "silent window", "single window"])
def test_short_inputs_equal_museval(museval: types.ModuleType, kind: str) -> None:
    refs, ests, window = _signals(kind)
    theirs = museval.evaluate(refs, ests, win=window, hop=window)
    pair = (refs[..., 0], ests[..., 0]) if kind == "mono" else (refs, ests)  # mono: 2-D
    ours = bss_eval_v4(*pair, window, window)
    assert ours.sdr.shape == np.asarray(theirs[0]).shape
    for k in range(4):
        np.testing.assert_array_equal(np.isnan(ours[k]), np.isnan(theirs[k]))
        finite = np.isfinite(theirs[k])
        np.testing.assert_allclose(ours[k][finite], theirs[k][finite], rtol=0, atol=1e-6)
    if kind == "silent window":
        assert np.isnan(ours.sdr[:, 2]).all() and np.isfinite(ours.sdr[:, [0, 1, 3, 4]]).all()


@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_short_inputs_do_not_depend_on_threads(
    monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    """Default chunk sizes (not the tiny ones of the other thread test): 5 windows in
    two chunks; on one thread the correlation sums are made in place."""
    refs, ests, window = _signals("stereo")
    monkeypatch.setenv("UNMIX_METRICS_THREADS", "3")
    reference = np.stack(bss_eval_v4(refs, ests, window, window))
    monkeypatch.setenv("UNMIX_METRICS_THREADS", threads)
    np.testing.assert_array_equal(np.stack(bss_eval_v4(refs, ests, window, window)), reference)


@pytest.mark.parametrize("nb_windows", [1, 2, 3, 7, 8, 16, 17, 21, 30, 180])
def test_even_chunks_cover_the_windows_in_order(nb_windows: int) -> None:
    chunks = even_chunks(nb_windows)
    assert chunks[0][0] == 0 and chunks[-1][1] == nb_windows
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    sizes = [b - a for a, b in chunks]
    assert min(sizes) >= 1 and max(sizes) <= WINDOWS_PER_CHUNK
    assert max(sizes) - min(sizes) <= 1  # nearly equal
    if nb_windows >= 2:
        assert len(chunks) % 2 == 0  # two threads share a short input evenly


def test_chunks_split_the_scoring_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """7 one-second windows are scored as 4 + 3, not as one chunk of 7."""
    seen: list[int] = []
    real = bsseval_mod.silent_windows

    def spy(groups: list[np.ndarray], bounds: list[tuple[int, int]]) -> np.ndarray:
        seen.append(len(bounds))
        return real(groups, bounds)

    monkeypatch.setattr(bsseval_mod, "silent_windows", spy)
    rng = np.random.default_rng(12)
    refs = rng.standard_normal((2, 7 * 1000 + 10, 1))
    bss_eval_v4(refs, refs + 0.1 * rng.standard_normal(refs.shape), 1000, 1000, 32)
    assert sorted(seen) == [3, 4]
