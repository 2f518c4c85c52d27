"""unmix.threads: tasks side by side on worker threads with one intra-op thread each, the
caller's grad, inference and autocast modes, results in order, the thread count restored."""

from __future__ import annotations

import threading

import pytest
import torch

from unmix.threads import cpu_workers, side_by_side


@pytest.fixture()
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _state() -> tuple[object, ...]:
    return (
        threading.current_thread().name,
        torch.get_num_threads(),
        torch.is_grad_enabled(),
        torch.is_inference_mode_enabled(),
        torch.is_autocast_enabled("cpu"),
        torch.get_autocast_dtype("cpu"),
    )


def test_results_in_order_on_worker_threads_with_one_thread_each(two_threads):
    results = side_by_side([lambda k=k: (k, _state()) for k in range(5)], 2, "unmix-test")
    assert [k for k, _ in results] == list(range(5))
    assert all(state[0].startswith("unmix-test") and state[1] == 1 for _, state in results)
    assert torch.get_num_threads() == 2  # restored


def test_the_callers_modes_reach_the_workers(two_threads):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        states = side_by_side([_state, _state], 2)
    assert all(s[2:] == (False, True, True, torch.bfloat16) for s in states)
    with torch.no_grad():
        states = side_by_side([_state, _state], 2)
    assert all(s[2:5] == (False, False, False) for s in states)
    states = side_by_side([_state, _state], 2)
    assert all(s[2:5] == (True, False, False) for s in states)


def test_one_worker_runs_in_order_on_the_calling_thread(two_threads):
    order: list[int] = []
    side_by_side([lambda k=k: order.append(k) for k in range(3)], 1)
    assert order == [0, 1, 2]
    (state,) = side_by_side([_state], 2)  # one task: no thread either
    assert state[0] == threading.current_thread().name and state[1] == 2


def test_an_exception_reaches_the_caller_and_the_count_is_restored(two_threads):
    def fail() -> None:
        raise ValueError("broken task")

    with pytest.raises(ValueError, match="broken task"):
        side_by_side([_state, fail, _state], 2)
    assert torch.get_num_threads() == 2


def test_cpu_workers_is_the_thread_count_capped_by_the_tasks(two_threads):
    assert cpu_workers(torch.device("cpu"), 4) == 2
    assert cpu_workers(torch.device("cpu"), 1) == 1
    assert cpu_workers(torch.device("cpu"), 0) == 1
    assert cpu_workers(torch.device("meta"), 4) == 1
