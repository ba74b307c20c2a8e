"""The index behind the server: consistent reads, serialised writes.

Every request reads one *snapshot* (the :class:`Index` object current when it started);
a write builds the next generation under a lock and then swaps the current snapshot in
one assignment. A reader therefore sees the index before or after a write, never half of
it, and writes run one at a time (the index folder's own file lock also keeps other
processes out).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.encode.config import EncoderSpec
from densa.encode.encoder import Encoder
from densa.index.index import Index
from densa.index.store import Filter
from densa.rerank.reranker import CrossEncoderReranker
from densa.search.searcher import Mode, SearchConfig, Searcher
from densa.serve.config import ServeConfig
from densa.types import Document, Hit

__all__ = ["IndexService", "LockedEncoder"]


class LockedEncoder:
    """An :class:`Encoder` whose calls run one at a time (Hugging Face fast tokenizers
    raise "Already borrowed" when one tokenizer is used from several threads at once)."""

    def __init__(self, inner: Encoder) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    @property
    def spec(self) -> EncoderSpec:
        return self._inner.spec

    @property
    def tokenizer(self) -> Any:
        return self._inner.tokenizer

    def encode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            return self._inner.encode_queries(texts)

    def encode_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            return self._inner.encode_documents(texts)

    def count_truncated(self, texts: Sequence[str]) -> int:
        with self._lock:
            return self._inner.count_truncated(texts)


class IndexService:
    """Thread-safe access to one index folder for the HTTP API."""

    def __init__(self, config: ServeConfig, encoder: Encoder | None = None) -> None:
        # without an encoder, the index loads the one it was built with (on config.backend)
        index = Index.open(config.index, encoder=encoder, device=config.device, backend=config.backend)
        self.config = config
        self.encoder = LockedEncoder(index.encoder)
        index.use_encoder(self.encoder)
        self._index = index
        self._write_lock = threading.Lock()
        self.reranker = (
            CrossEncoderReranker(config.reranker, device=config.device) if config.reranker else None
        )
        self.started = time.time()
        self.searches = 0
        self.writes = 0

    @property
    def index(self) -> Index:
        """The current snapshot."""
        return self._index

    def search(
        self, texts: Sequence[str], k: int, mode: Mode, filter: Filter | None, rerank: bool
    ) -> list[list[Hit]]:
        snapshot = self._index
        config = SearchConfig(mode=mode, rerank_weight=self.config.rerank_weight)
        searcher = Searcher(snapshot, config, reranker=self.reranker if rerank else None)
        hits = searcher.hits(texts, k, filter=filter)
        self.searches += len(texts)
        return hits

    def add(self, documents: Sequence[Document]) -> int:
        with self._write_lock:
            self._index = self._index.add(documents)
            self.writes += 1
            return len(self._index)

    def delete(self, ids: Sequence[str]) -> int:
        with self._write_lock:
            self._index = self._index.delete(ids)
            self.writes += 1
            return len(self._index)

    def stats(self) -> dict[str, Any]:
        snapshot = self._index
        manifest = snapshot.manifest
        return {
            "documents": manifest.documents,
            "passages": manifest.passages,
            "generation": manifest.generation,
            "model": manifest.encoder.model,
            "dim": manifest.encoder.dim,
            "index_kind": manifest.vectors.kind,
            "reranker": self.reranker is not None,
            "searches": self.searches,
            "writes": self.writes,
            "uptime_s": round(time.time() - self.started, 1),
        }
