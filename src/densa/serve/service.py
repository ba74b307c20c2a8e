"""The index behind the server: batched consistent reads, serialised writes, other processes'
writes seen.

Concurrent searches are micro-batched (:mod:`densa.serve.batching`): requests with the same
search options run as one batch, on a lane of their own when they need no model. Every batch
reads one *snapshot* (the :class:`Index` current when it started). A write
commits the next generation under the index's writer lock and swaps the current snapshot
in one assignment; a write from another process (``densa add`` beside the server) is picked
up by the next request, which sees ``manifest.json`` changed (one ``stat``) and opens the
new generation, sharing the unchanged segments. A reader therefore sees the index before or
after a write, never half of it. A swapped-out snapshot is closed (its lease released)
once the last request reading it has finished.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from densa.encode.concurrent import for_threads
from densa.encode.encoder import Encoder
from densa.index import Filter, Index, set_search_threads
from densa.index.channels.base import has_model
from densa.index.channels.dense import DenseKind
from densa.index.manifest import MANIFEST, Manifest
from densa.rerank.reranker import load_reranker
from densa.search import SearchConfig, Searcher, resolve_channels
from densa.serve.batching import Batcher
from densa.serve.config import ServeConfig
from densa.types import Document, Hit

__all__ = ["IndexService"]

_LOG = logging.getLogger("densa.serve")


@dataclass(frozen=True, eq=False)
class _Search:
    """What a batch shares: search options, k, filter, reranking (equal when their JSON is)."""

    config: SearchConfig
    k: int
    filter: Mapping[str, Any] | None
    rerank: bool
    _key: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        key = json.dumps([asdict(self.config), self.k, self.filter, self.rerank], sort_keys=True, default=str)
        object.__setattr__(self, "_key", key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Search) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)


class IndexService:
    """Thread-safe access to one index folder for the HTTP API."""

    def __init__(self, config: ServeConfig, encoder: Encoder | None = None) -> None:
        self.config = config
        self._manifest = str(config.index / MANIFEST)
        self._given = encoder
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.reranker = load_reranker(config.reranker, device=config.device) if config.reranker else None
        self.started = time.time()
        self.searches = 0
        self.writes = 0
        self._closed = True
        self.open()

    def open(self) -> None:
        """Open the current generation and start the batch workers (again, after :meth:`close`)."""
        if not self._closed:
            return
        set_search_threads(self.config.search_threads)
        # without an encoder, the index loads the one it was built with (queries on config.backend)
        index = Index.open(
            self.config.index, encoder=self._given, device=self.config.device, backend=self.config.backend
        )
        self._loading: threading.Thread | None = None  # the writes' model, loading
        self.encoder: Encoder | None = None  # the default dense channel's query encoder
        writes_model: DenseKind | None = None  # its document encoder, to load after warming up
        if any(r.kind == "dense" for r in index.channels.values()):
            kind = index.dense_kind()
            # the model lane's workers encode side by side (an exported graph) or in turn
            self.encoder = for_threads(kind.query_encoder, self.config.model_threads)
            if kind.queries_on_own_backend:  # one encoder for queries and added documents
                kind.use_encoder(self.encoder)
            else:  # documents on the index's backend: loaded once the workers are warm
                kind.use_encoder(queries=self.encoder)
                if not self.config.read_only:
                    writes_model = kind
        if self.config.search is not None:  # a pipeline naming channels the index lacks fails now
            resolve_channels(self.config.search.mode, index.channels)
        if len(index.channels) > 1:  # measure label-free fusion now, not in the first request
            from densa.search.calibrate import load_or_measure

            load_or_measure(index, list(index.channels))
        self._index = index
        self._stamp = self._manifest_stamp()
        self._readers: dict[int, int] = {}  # id(index) -> requests reading it
        self._retired: list[Index] = []
        self._batcher = Batcher(
            self._run_batch,
            {"model": self.config.model_threads, "plain": 1},
            max_wait=self.config.batch_wait_ms / 1000,
            max_queries=self.config.max_batch,
            warm_up=self._warm_up,
        )
        if writes_model is not None:  # beside the first searches, after the warm-ups
            self._load_in_background(lambda: writes_model.encoder)
        self._closed = False

    def _warm_up(self, lane: str) -> None:
        """One search on every channel (and the reranker) that ``lane`` searches, run by each of
        its workers before it takes requests: a cold server answered its first search in 690 ms
        (SciFact, hybrid; tokenizer copies, inference kernels, imports), the next in 40."""
        with self.snapshot(refresh=False) as index:
            # the model lane serves every request that needs a model, fused with the others
            channels = [c for c in index.channels if lane == "model" or not has_model(index.kind(c))]
            if channels:
                config = replace(self.config.request_defaults, mode="+".join(channels))
                reranker = self.reranker if lane == "model" else None
                Searcher(index, config, reranker=reranker).hits(["warm-up query"], 1)

    def _load_in_background(self, load: Callable[[], object]) -> None:
        """Run ``load`` (a write's model) on a thread holding the write lock: the first write
        waits for it instead of loading it again, and searches go on meanwhile."""

        def run() -> None:
            with self._write_lock:
                try:
                    load()
                except Exception as exc:  # the first write loads it again and reports it
                    _LOG.warning("could not load the document encoder ahead of writes: %s", exc)

        self._loading = threading.Thread(target=run, name="densa-load-writer-model", daemon=True)
        self._loading.start()

    def _manifest_stamp(self) -> tuple[int, int]:
        stat = os.stat(self._manifest)  # a str: Path.stat costs as much again, once a request
        return stat.st_mtime_ns, stat.st_ino

    @property
    def stale(self) -> bool:
        """Whether ``manifest.json`` changed since the snapshot was opened (one ``stat``)."""
        return self._manifest_stamp() != self._stamp

    def refresh(self) -> None:
        """Swap to a generation another process committed (a ``stat`` when nothing changed);
        waits for this server's write in progress, if any."""
        stamp = self._manifest_stamp()
        if stamp == self._stamp:
            return
        with self._write_lock:  # one swap at a time, and never in the middle of our own write
            if Manifest.read(self.config.index).generation != self._index.manifest.generation:
                self._swap(self._index.refresh())
            self._stamp = stamp

    def _swap(self, new: Index) -> None:
        with self._state_lock:
            old, self._index = self._index, new
            if old is not new:
                self._retired.append(old)
            self._close_idle()

    def _close_idle(self) -> None:
        for old in [i for i in self._retired if not self._readers.get(id(i))]:
            self._retired.remove(old)
            old.close()

    @contextmanager
    def snapshot(self, refresh: bool = True) -> Iterator[Index]:
        """The current snapshot (after :meth:`refresh` unless told not to), kept open until the
        block ends."""
        if refresh:
            self.refresh()
        with self._state_lock:
            index = self._index
            self._readers[id(index)] = self._readers.get(id(index), 0) + 1
        try:
            yield index
        finally:
            with self._state_lock:
                self._readers[id(index)] -= 1
                if not self._readers[id(index)]:
                    del self._readers[id(index)]
                self._close_idle()

    def search(
        self, texts: Sequence[str], k: int, config: SearchConfig, filter: Filter | None, rerank: bool
    ) -> tuple[list[str], list[list[Hit]]]:
        """The channels searched, and the hits of each query (batched with concurrent requests
        that search the same way)."""
        self.refresh()
        channels, pending = self.submit(texts, k, config, filter, rerank)
        return channels, pending.result()

    def submit(
        self, texts: Sequence[str], k: int, config: SearchConfig, filter: Filter | None, rerank: bool
    ) -> tuple[list[str], Future[list[list[Hit]]]]:
        """:meth:`search` without waiting, and without :meth:`refresh` (an event loop calls it
        and refreshes only when :attr:`stale`, off the loop): the channels searched, and the
        hits to come. Bad options raise here; errors of the search itself come in the future."""
        with self.snapshot(refresh=False) as index:
            channels = resolve_channels(config.mode, index.channels)
            needs_model = rerank or any(has_model(index.kind(c)) for c in channels)
        pending = self._batcher.submit(
            "model" if needs_model else "plain", _Search(config, k, filter, rerank), list(texts)
        )
        self.searches += len(texts)
        return channels, pending

    def _run_batch(self, search: Any, texts: list[str]) -> list[list[Hit]]:
        """One batch of same-option searches, on one snapshot."""
        with self.snapshot() as index:
            reranker = self.reranker if search.rerank else None
            return Searcher(index, search.config, reranker=reranker).hits(
                texts, search.k, filter=search.filter
            )

    def close(self) -> None:
        """Stop the batch workers and close the snapshots (:meth:`open` starts them again)."""
        if self._closed:
            return
        self._closed = True
        self._batcher.close()
        with self._state_lock:
            for index in [self._index, *self._retired]:
                index.close()
            self._retired.clear()

    def add(self, documents: Sequence[Document]) -> int:
        with self._write_lock:
            self._swap(self._index.add(documents))
            self.writes += 1
            return len(self._index)

    def delete(self, ids: Sequence[str]) -> int:
        with self._write_lock:
            self._swap(self._index.delete(ids))
            self.writes += 1
            return len(self._index)

    def stats(self) -> dict[str, Any]:
        with self.snapshot() as index:
            manifest = index.manifest
        return {
            "documents": manifest.documents,
            "passages": manifest.passages,
            "generation": manifest.generation,
            "segments": len(manifest.segments),
            "channels": {name: record.kind for name, record in manifest.channels.items()},
            "reranker": self.reranker is not None,
            "searches": self.searches,
            "batches": self._batcher.stats(),
            "writes": self.writes,
            # False while the model of writes loads beside the first searches (they are slower)
            "writes_ready": self._loading is None or not self._loading.is_alive(),
            "uptime_s": round(time.time() - self.started, 1),
        }
