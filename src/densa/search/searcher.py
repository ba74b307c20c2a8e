"""Search over an :class:`~densa.index.Index`: dense, BM25 or hybrid, filtered, reranked.

The pipeline per query batch::

    filter -> allowed row ids
    dense:  encode queries -> vector search over passages -> document = best passage(s)
    bm25:   keyword search over whole documents
    hybrid: both, ``depth`` candidates each, fused (RRF or weighted)
    rerank: a cross-encoder rescores the top ``rerank_depth``
    -> top k
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from densa.errors import ConfigError
from densa.fuse.fusion import FusionConfig, fuse
from densa.fuse.weighted import weighted_fusion
from densa.index.index import Index
from densa.index.store import Filter
from densa.rerank.reranker import Reranker
from densa.types import Document, Hit, Query, Run, rank_items

__all__ = ["Mode", "SearchConfig", "Searcher"]

Mode = Literal["dense", "bm25", "hybrid"]


@dataclass(frozen=True)
class SearchConfig:
    """How to search.

    Parameters
    ----------
    mode
        ``dense`` (bi-encoder), ``bm25`` (keywords) or ``hybrid`` (both, fused).
    fusion
        How hybrid fuses the dense and BM25 rankings (weights in that order).
    depth
        Candidates taken from each ranking before fusion.
    aggregate
        Document score from its passages: ``max`` (best passage) or ``sum`` (of the
        ``top_passages`` best); matters only for chunked indexes.
    top_passages
        Passages summed by ``aggregate="sum"``.
    rerank_depth
        Candidates the reranker rescores (when one is given).
    rerank_weight
        1 ranks the reranked candidates by the cross-encoder alone; below 1, by
        ``w * z(cross-encoder) + (1 - w) * z(first stage)`` (z-scores over the candidates),
        which keeps what the first stage knows when the reranker is weak or out of domain.
    """

    mode: Mode = "dense"
    fusion: FusionConfig = field(default_factory=FusionConfig)
    depth: int = 100
    aggregate: Literal["max", "sum"] = "max"
    top_passages: int = 3
    rerank_depth: int = 100
    rerank_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in get_args(Mode):
            raise ConfigError(f"mode must be one of {get_args(Mode)}, got {self.mode!r}")
        if self.aggregate not in ("max", "sum"):
            raise ConfigError(f"aggregate must be 'max' or 'sum', got {self.aggregate!r}")
        if min(self.depth, self.top_passages, self.rerank_depth) < 1:
            raise ConfigError("depth, top_passages and rerank_depth must be positive")
        if not 0 <= self.rerank_weight <= 1:
            raise ConfigError(f"rerank_weight must be in [0, 1], got {self.rerank_weight}")


@dataclass
class _Scored:
    """One query's candidates by document id: scores, row ids, and dense hits' best passage."""

    scores: dict[str, float]
    rids: dict[str, int]
    best_passage: dict[str, int]


class Searcher:
    """Runs :class:`SearchConfig` over an index; also a :class:`~densa.search.Retriever`."""

    def __init__(
        self, index: Index, config: SearchConfig | None = None, *, reranker: Reranker | None = None
    ) -> None:
        self.index = index
        self.config = config or SearchConfig()
        self.reranker = reranker

    def search(self, queries: Sequence[Query], k: int, filter: Filter | None = None) -> Run:
        """Top-``k`` documents of every query as a :class:`Run` (the Retriever protocol)."""
        scored = self._scored([q.text for q in queries], k, filter)
        return Run(
            {q.id: s.scores for q, s in zip(queries, scored, strict=True)},
            name=f"densa-{self.config.mode}" + ("-rerank" if self.reranker else ""),
        )

    def hits(self, texts: Sequence[str], k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """Top-``k`` hits with their stored documents; ``passage`` is the best-matching chunk."""
        scored = self._scored(texts, k, filter)
        shown = [list(s.scores) for s in scored]
        docs, passages = self._load(scored, shown)
        results: list[list[Hit]] = []
        for s in scored:
            hits = []
            for rank, (doc_id, score) in enumerate(rank_items(s.scores.items()), start=1):
                doc = docs[s.rids[doc_id]]
                passage = passages.get(s.best_passage.get(doc_id, -1), "")
                hits.append(Hit(doc.id, score, rank, doc.title, doc.text, doc.metadata, passage))
            results.append(hits)
        return results

    # ------------------------------------------------------------------ steps
    def _load(
        self, scored: list[_Scored], wanted: list[list[str]]
    ) -> tuple[dict[int, Document], dict[int, str]]:
        """The ``wanted`` documents of each query (one store query), and in a chunked index the
        text of their best-matching passages (one more), keyed by passage id."""
        docs = self.index.store.get_many(
            s.rids[d] for s, ids in zip(scored, wanted, strict=True) for d in ids
        )
        if not self.index.manifest.chunking:
            return docs, {}
        pids = [
            s.best_passage[d]
            for s, ids in zip(scored, wanted, strict=True)
            for d in ids
            if d in s.best_passage
        ]
        spans = self.index.store.passages(pids)
        return docs, {pid: docs[rid].text[a:b] for pid, (rid, a, b) in spans.items()}

    def _scored(self, texts: Sequence[str], k: int, filter: Filter | None) -> list[_Scored]:
        if k < 1:
            raise ConfigError("k must be at least 1")
        if not texts:
            return []
        config = self.config
        allowed = self.index.allowed(filter)
        depth = max(k, config.depth) if config.mode == "hybrid" else k
        if self.reranker is not None:
            depth = max(depth, config.rerank_depth)
        dense: list[dict[int, tuple[float, int]]] = []
        sparse: list[dict[int, float]] = []
        if config.mode in ("dense", "hybrid"):
            vectors = self.index.encoder.encode_queries(list(texts))
            dense = self.index.dense_scores(
                vectors, depth, allowed, aggregate=config.aggregate, top_passages=config.top_passages
            )
        if config.mode in ("bm25", "hybrid"):
            sparse = self.index.bm25_scores(texts, depth, allowed)
        ids = self.index.store.ids_of({r for d in dense for r in d} | {r for s in sparse for r in s})
        scored = []
        for i in range(len(texts)):
            d = dense[i] if dense else {}
            b = sparse[i] if sparse else {}
            dense_scores = {ids[r]: s for r, (s, _) in d.items()}
            bm25_scores = {ids[r]: s for r, s in b.items()}
            if config.mode == "dense":
                scores = dense_scores
            elif config.mode == "bm25":
                scores = bm25_scores
            else:
                scores = fuse([dense_scores, bm25_scores], config.fusion)
            rids = {ids[r]: r for r in (*d, *b)}
            scored.append(_Scored(scores, rids, {ids[r]: p for r, (_, p) in d.items()}))
        if self.reranker is not None:
            scored = self._rerank(texts, scored)
        return [_Scored(dict(rank_items(s.scores.items())[:k]), s.rids, s.best_passage) for s in scored]

    def _rerank(self, texts: Sequence[str], scored: list[_Scored]) -> list[_Scored]:
        assert self.reranker is not None
        tops = [[d for d, _ in rank_items(s.scores.items())[: self.config.rerank_depth]] for s in scored]
        docs, passages = self._load(scored, tops)
        pairs = [
            (text, passages.get(s.best_passage.get(d, -1)) or docs[s.rids[d]].full_text)
            for text, s, top in zip(texts, scored, tops, strict=True)
            for d in top
        ]
        new_scores = iter(self.reranker.score(pairs))
        weight = self.config.rerank_weight
        reranked = []
        for s, top in zip(scored, tops, strict=True):
            scores = {d: next(new_scores) for d in top}
            if weight < 1:
                first = {d: s.scores[d] for d in top}
                scores = weighted_fusion([scores, first], [weight, 1 - weight], "zscore")
            reranked.append(_Scored(scores, s.rids, s.best_passage))
        return reranked
