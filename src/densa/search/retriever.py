"""Retrievers: anything that turns queries into a :class:`~densa.types.Run`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from densa.index.index import Index
from densa.types import Query, Run

__all__ = ["DenseRetriever", "Retriever"]


@runtime_checkable
class Retriever(Protocol):
    """``search(queries, k) -> Run``: the top ``k`` documents of every query."""

    def search(self, queries: Sequence[Query], k: int) -> Run: ...


class DenseRetriever:
    """Bi-encoder retrieval over an :class:`Index` (one query forward pass + vector search)."""

    def __init__(self, index: Index, *, batch_size: int = 256) -> None:
        self.index = index
        self.batch_size = batch_size

    def search(self, queries: Sequence[Query], k: int) -> Run:
        scores: dict[str, dict[str, float]] = {}
        for start in range(0, len(queries), self.batch_size):
            part = queries[start : start + self.batch_size]
            for query, hits in zip(part, self.index.search([q.text for q in part], k), strict=True):
                scores[query.id] = {h.doc_id: h.score for h in hits}
        return Run(scores, name="densa-dense")
