"""Fixtures of the training tests: the small MUSDB18 folder and the decoded-audio cache
shared by every training test (built once per session in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def root(musdb_root: Path) -> Path:
    """The small MUSDB18 folder of conftest: 4 training and 2 validation tracks."""
    return musdb_root


@pytest.fixture(scope="module")
def cache(decode_cache: Path) -> Path:
    return decode_cache
