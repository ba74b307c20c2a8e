"""The micro-batcher: requests grouped, results handed back, cancelled requests dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError

import pytest

from densa.serve.batching import Batcher


def test_a_cancelled_request_is_dropped_and_the_lane_goes_on() -> None:
    """An awaiting client that goes away cancels its future (``asyncio.wrap_future``): the
    lane must skip it, not die on ``set_result`` of a cancelled future."""
    gate = threading.Event()
    seen: list[list[str]] = []

    def run(key: object, texts: list[str]) -> Sequence[str]:
        gate.wait(5)
        seen.append(texts)
        return [t.upper() for t in texts]

    batcher = Batcher(run, {"model": 1}, max_wait=0.0)
    try:
        first = batcher.submit("model", "k", ["a"])
        time.sleep(0.1)  # the worker holds ``first``; the next waits in the queue
        second = batcher.submit("model", "k", ["b"])
        assert second.cancel()
        assert not first.cancel()  # running already: too late to cancel
        gate.set()
        assert first.result(5) == ["A"]
        assert batcher.search("model", "k", ["c", "d"]) == ["C", "D"]
        assert ["b"] not in seen
        with pytest.raises(CancelledError):
            second.result(0)
    finally:
        gate.set()
        batcher.close()


def test_each_worker_warms_up_in_its_own_thread_before_the_first_request() -> None:
    warmed: list[tuple[str, str]] = []
    ran_in: list[str] = []
    lock = threading.Lock()

    def warm_up(lane: str) -> None:
        time.sleep(0.05)  # the constructor waits for it
        with lock:
            warmed.append((lane, threading.current_thread().name))

    def run(key: object, texts: list[str]) -> Sequence[str]:
        ran_in.append(threading.current_thread().name)
        return texts

    batcher = Batcher(run, {"model": 2, "plain": 1}, max_wait=0.0, warm_up=warm_up)
    try:
        assert sorted(warmed) == [
            ("model", "densa-batcher-model-0"),
            ("model", "densa-batcher-model-1"),
            ("plain", "densa-batcher-plain-0"),
        ]
        assert batcher.search("model", "k", ["a"]) == ["a"]
        assert ran_in[0] in {name for _, name in warmed}
    finally:
        batcher.close()


def test_workers_warm_up_one_at_a_time() -> None:
    """Two first inferences at once once left a server stuck for good: no two warm-ups, of
    any lanes, overlap."""
    running, most = 0, 0
    lock = threading.Lock()

    def warm_up(lane: str) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    batcher = Batcher(lambda key, texts: texts, {"model": 3, "plain": 1}, max_wait=0.0, warm_up=warm_up)
    try:
        assert most == 1
        assert batcher.search("plain", "k", ["a"]) == ["a"]
    finally:
        batcher.close()


def test_a_failing_warm_up_leaves_the_lane_serving(caplog: pytest.LogCaptureFixture) -> None:
    def warm_up(lane: str) -> None:
        raise RuntimeError("no model here")

    batcher = Batcher(lambda key, texts: texts, {"model": 1}, max_wait=0.0, warm_up=warm_up)
    try:
        assert batcher.search("model", "k", ["a"]) == ["a"]
        assert "warming up the model lane failed: no model here" in caplog.text
    finally:
        batcher.close()
