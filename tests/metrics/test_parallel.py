"""unmix.metrics.parallel: OpenBLAS kept to one thread while the metrics run, then restored."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, as the metrics do)

from unmix.metrics import bss_eval_v4
from unmix.metrics import bsseval as bsseval_mod
from unmix.metrics.parallel import _openblas_controls, single_threaded_blas


def _counts() -> list[int]:
    return [int(getter()) for getter, _ in _openblas_controls()]


@pytest.fixture
def two_blas_threads() -> Iterator[list[int]]:
    controls = _openblas_controls()
    if not controls:
        pytest.skip("no OpenBLAS with thread controls in this process")
    before = _counts()
    for _, setter in controls:
        setter(2)
    yield _counts()
    for (_, setter), threads in zip(controls, before, strict=True):
        setter(threads)


def test_blas_is_single_threaded_inside_and_restored_after(two_blas_threads: list[int]) -> None:
    assert set(two_blas_threads) == {2}
    with single_threaded_blas():
        assert set(_counts()) == {1}
        with single_threaded_blas():  # nested: the inner block does not restore
            pass
        assert set(_counts()) == {1}
    assert _counts() == two_blas_threads


def test_bss_eval_runs_with_one_blas_thread(
    monkeypatch: pytest.MonkeyPatch, two_blas_threads: list[int]
) -> None:
    seen: list[list[int]] = []
    real = bsseval_mod.framewise_scores

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(_counts())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bsseval_mod, "framewise_scores", spy)
    rng = np.random.default_rng(13)
    refs = rng.standard_normal((2, 3000, 2))
    bss_eval_v4(refs, refs + 0.1 * rng.standard_normal(refs.shape), 1000, 1000, 32)
    assert seen and set(seen[0]) == {1}
    assert _counts() == two_blas_threads  # restored, also for the caller's later work
