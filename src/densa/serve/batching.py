"""Dynamic micro-batching of concurrent searches, as inference servers batch requests
(NVIDIA Triton's dynamic batcher, TorchServe's ``max_batch_delay``).

A request joins a queue and waits at most ``max_wait`` seconds for other requests with the
same search (config, k, filter, reranking); the group then runs as one ``Searcher.hits``
call: one forward pass of the query encoder for all its queries, one vector search, one
document fetch. Requests run on a *lane*: searches that need a model (a dense channel or a
reranker) share one lane, the others (BM25 alone) another, so a cheap request never waits
behind the encoder. A lane may have several worker threads: while one encodes its group (the
encoder itself runs one batch at a time), another searches, fuses and fetches the previous
one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Batcher"]

#: Runs one group: ``(key, all texts) -> one result per text``.
RunGroup = Callable[[Hashable, list[str]], Sequence[Any]]

_LOG = logging.getLogger("densa.serve")


@dataclass
class _Request:
    key: Hashable
    texts: list[str]
    future: Future[list[Any]] = field(default_factory=Future)


class _Lane:
    """Worker threads and their queue."""

    def __init__(
        self,
        name: str,
        run: RunGroup,
        max_wait: float,
        max_queries: int,
        threads: int = 1,
        warm_up: Callable[[str], object] | None = None,
        warm_lock: threading.Lock | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self._warm_up = warm_up
        self._warm_lock = warm_lock or threading.Lock()
        self._max_wait = max_wait
        self._max_queries = max_queries
        self._queue: deque[_Request] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self.batches = 0
        self.queries = 0
        self._warm = [threading.Event() for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._loop, args=(warm,), name=f"densa-batcher-{name}-{i}", daemon=True)
            for i, warm in enumerate(self._warm)
        ]
        for thread in self._threads:
            thread.start()
        for warm in self._warm:  # the lane serves its first request warm
            warm.wait()

    def submit(self, request: _Request) -> None:
        with self._ready:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.append(request)
            self._ready.notify()

    def _take_group(self) -> list[_Request] | None:
        """The oldest request and those with its key that arrive within ``max_wait``."""
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if not self._queue:
                return None
            first = self._queue.popleft()
            group, size = [first], len(first.texts)
            deadline = time.monotonic() + self._max_wait
            while size < self._max_queries:
                for request in list(self._queue):
                    if request.key == first.key and size + len(request.texts) <= self._max_queries:
                        self._queue.remove(request)
                        group.append(request)
                        size += len(request.texts)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._ready.wait(left)
            return group

    def _loop(self, warm: threading.Event) -> None:
        try:
            if self._warm_up is not None:
                with self._warm_lock:  # one worker at a time (see Batcher)
                    self._warm_up(self.name)
        except Exception as exc:  # the first request meets the same problem and reports it
            _LOG.warning("warming up the %s lane failed: %s", self.name, exc)
        finally:
            warm.set()
        while (group := self._take_group()) is not None:
            # a request whose waiter cancelled it (an awaiting client that went away) is dropped;
            # the others are marked running, so a late cancel cannot make set_result raise and
            # end this worker thread
            group = [request for request in group if request.future.set_running_or_notify_cancel()]
            if not group:
                continue
            texts = [t for request in group for t in request.texts]
            try:
                results = list(self._run(group[0].key, texts))
            except BaseException as exc:  # every waiting request gets the error
                for request in group:
                    request.future.set_exception(exc)
                continue
            with self._ready:
                self.batches += 1
                self.queries += len(texts)
            at = 0
            for request in group:
                request.future.set_result(results[at : at + len(request.texts)])
                at += len(request.texts)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)


class Batcher:
    """Micro-batches searches on named lanes (see the module docstring).

    Parameters
    ----------
    run
        Runs one group of same-key searches: ``run(key, texts)`` returns a result per text.
    lanes
        The lanes' names, each with its number of worker threads.
    max_wait
        Seconds a request waits for others to join its batch.
    max_queries
        Queries in one batch at most.
    warm_up
        Run by each worker thread, with its lane's name, before it takes requests (the
        constructor returns when all have run): a worker's first search builds what it keeps
        (its tokenizer, an inference request's kernels, imports), which a cold server's first
        requests would otherwise wait for. The workers warm up one at a time: a server was
        once caught stuck for good with two workers in their first OpenVINO inference at once
        (beside an ONNX Runtime session being created), which a cold server without warm-up
        had met in its first concurrent searches.
    """

    def __init__(
        self,
        run: RunGroup,
        lanes: Mapping[str, int],
        *,
        max_wait: float = 0.003,
        max_queries: int = 64,
        warm_up: Callable[[str], object] | None = None,
    ) -> None:
        warm_lock = threading.Lock()
        self._lanes = {
            name: _Lane(name, run, max_wait, max_queries, threads, warm_up, warm_lock)
            for name, threads in lanes.items()
        }

    def search(self, lane: str, key: Hashable, texts: list[str]) -> list[Any]:
        """Queue ``texts`` on ``lane`` and wait for their results (one per text)."""
        return self.submit(lane, key, texts).result()

    def submit(self, lane: str, key: Hashable, texts: list[str]) -> Future[list[Any]]:
        """Queue ``texts`` on ``lane``; their results (one per text) come in the future
        (``asyncio.wrap_future`` awaits it on an event loop)."""
        request = _Request(key, texts)
        self._lanes[lane].submit(request)
        return request.future

    def stats(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "batches": lane.batches,
                "queries": lane.queries,
                "mean_batch": lane.queries / lane.batches if lane.batches else 0.0,
            }
            for name, lane in self._lanes.items()
        }

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.close()
