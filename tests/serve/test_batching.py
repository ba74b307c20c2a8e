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
