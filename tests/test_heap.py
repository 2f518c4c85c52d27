"""unmix.heap: glibc's allocator keeps freed blocks; elsewhere nothing changes."""

from __future__ import annotations

import ctypes
import sys

import pytest
import torch

from unmix import heap
from unmix.config import CONFIGS
from unmix.models.umx import UMX, OpenUnmix
from unmix.separator import Separator


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(heap, "_done", None)


def test_settings_reach_mallopt_once(fresh, monkeypatch):
    calls = []

    class FakeLibc:
        gnu_get_libc_version = object()

        @staticmethod
        def mallopt(param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    assert heap.keep_freed_memory() is True
    assert heap.keep_freed_memory() is True
    assert calls == [
        (heap.M_MMAP_THRESHOLD, 32 * 1024 * 1024),
        (heap.M_TRIM_THRESHOLD, 1024 * 1024 * 1024),
    ]


def test_without_glibc_nothing_is_set(fresh, monkeypatch):
    class Musl:
        @staticmethod
        def mallopt(param, value):
            raise AssertionError("must not be called")

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Musl())
    assert heap.keep_freed_memory() is False


def test_other_systems_are_left_alone(fresh, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert heap.keep_freed_memory() is False


def test_a_failing_mallopt_says_so(fresh, monkeypatch):
    class Refuses:
        gnu_get_libc_version = object()

        @staticmethod
        def mallopt(param, value):
            return 0

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Refuses())
    assert heap.keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc knob")
def test_real_glibc_accepts_the_settings(fresh):
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):
        pytest.skip("not glibc")
    assert heap.keep_freed_memory() is True


def test_the_separator_sets_it(monkeypatch):
    cfg = CONFIGS["umxhq"].with_(hidden_size=8)
    sep = Separator(UMX({t: OpenUnmix.from_config(cfg) for t in cfg.targets}), cfg).freeze()
    seen = []
    monkeypatch.setattr("unmix.separator.keep_freed_memory", lambda: seen.append(1))
    with torch.inference_mode():
        stems = sep(torch.zeros(1, 2, 8192))
    assert seen == [1]
    assert stems.shape == (1, 4, 2, 8192)


def test_the_environment_can_turn_it_off(fresh, monkeypatch):
    class Glibc:
        gnu_get_libc_version = object()

        @staticmethod
        def mallopt(param, value):
            raise AssertionError("must not be called with UNMIX_KEEP_FREED_MEMORY=0")

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Glibc())
    monkeypatch.setenv("UNMIX_KEEP_FREED_MEMORY", "0")
    assert heap.keep_freed_memory() is False
