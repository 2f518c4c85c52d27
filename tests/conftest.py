"""Shared fixtures: the reference implementation (openunmix 1.3.0) as an oracle, and the
real music clips of ../shared/data (skipped with a reason where absent)."""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UNMIX_SHARED", REPO.parent / "shared"))
PREVIEW = SHARED / "data" / "musdb18-preview" / "train"


def preview_clips() -> list[Path]:
    """Sorted MUSDB18 preview clips, or an empty list."""
    return sorted(PREVIEW.glob("*.stem.mp4")) if PREVIEW.is_dir() else []


@pytest.fixture(scope="session")
def clips() -> list[Path]:
    found = preview_clips()
    if not found:
        if os.environ.get("UNMIX_REQUIRE_SHARED"):
            pytest.fail(f"UNMIX_REQUIRE_SHARED is set but {PREVIEW} has no clips")
        pytest.skip(f"shared data not found at {PREVIEW} (only present in the project checkout/CI)")
    return found


@pytest.fixture(scope="session")
def clip(clips: list[Path]) -> Path:
    return clips[0]


@pytest.fixture(scope="session")
def openunmix() -> types.ModuleType:
    """openunmix 1.3.0, the test-only oracle (see ``helpers.import_openunmix``)."""
    from .helpers import import_openunmix

    try:
        return import_openunmix()
    except ImportError as exc:  # pragma: no cover - CI installs it
        pytest.skip(f"openunmix oracle not installed ({exc})")


@pytest.fixture(scope="session")
def museval() -> types.ModuleType:
    """Import museval 0.4.1 (test-only oracle for unmix.metrics / unmix.evaluate).

    museval imports musdb, whose stempeg raises at import time when the ffmpeg programs are
    missing; museval's metrics and JSON stores do not need them, so musdb is then stubbed.
    """
    try:
        importlib.import_module("musdb")
    except RuntimeError:  # stempeg: "ffmpeg or ffprobe could not be found"
        sys.modules["musdb"] = types.ModuleType("musdb")
    except ImportError as exc:  # pragma: no cover - CI installs it
        pytest.skip(f"museval oracle not installed ({exc})")
    try:
        return importlib.import_module("museval")
    except ImportError as exc:  # pragma: no cover - CI installs it
        pytest.skip(f"museval oracle not installed ({exc})")


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One torch thread for tests of tiny tensors: faster, and immune to a busy second core.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
