"""Search over an :class:`~densa.index.Index`: any channels, fused, filtered, reranked.

The pipeline per query batch, over one snapshot::

    filter + tombstones -> a mask of allowed rows per segment
    per channel: encode the queries once -> search every segment -> merge the top units
                 -> passages to documents (MaxP or sum, on arrays)
    two or more channels: fuse their document rankings (RRF or weighted, weights by name)
    rerank: a cross-encoder rescores the top ``rerank_depth`` (documents fetched once)
    -> the top k, ties broken by document id (trec_eval's order); documents fetched once

Candidate lists keep ties at every cut, so results do not depend on how row ids were
numbered: an index built by updates and merges ranks exactly as a fresh build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from densa.errors import ConfigError
from densa.fuse.fusion import FusionConfig, fuse_arrays
from densa.fuse.weighted import weighted_arrays
from densa.index import Filter, Index, Snapshot, UnitScores
from densa.index.channels.base import BoolArray, top_k_with_ties
from densa.rerank.reranker import Reranker
from densa.search.aggregate import aggregate
from densa.search.config import SearchConfig, resolve_channels
from densa.types import Document, Hit, Query, Run, rank_items

__all__ = ["Searcher"]


@dataclass(frozen=True)
class _Scored:
    """One query's candidates: row ids and scores (best first), and the best passage of each
    document a passage channel found (row id -> passage id)."""

    ranking: UnitScores
    best_passage: dict[int, int]

    def top(self, k: int) -> _Scored:
        return _Scored(top_k_with_ties(self.ranking.ids, self.ranking.scores, k), self.best_passage)


class Searcher:
    """Runs a :class:`SearchConfig` over an index; also a :class:`~densa.search.Retriever`.

    Parameters
    ----------
    index
        The index (its current snapshot is searched).
    config
        Channels, fusion, passages, reranking.
    reranker
        A cross-encoder for the top candidates (``None``: no reranking).
    """

    def __init__(
        self, index: Index, config: SearchConfig | None = None, *, reranker: Reranker | None = None
    ) -> None:
        self.index = index
        self.config = config or SearchConfig()
        self.reranker = reranker
        self._fusions: dict[tuple[str, ...], FusionConfig] = {}

    @property
    def channels(self) -> list[str]:
        """The channels this searcher's ``mode`` selects in the index."""
        return resolve_channels(self.config.mode, self.index.channels)

    def fusion(self, names: Sequence[str] | None = None) -> FusionConfig:
        """How the rankings of ``names`` (default: this searcher's channels) fuse: the
        config's fusion, with ``auto`` resolved to the weights measured on the index's corpus
        (:mod:`densa.search.calibrate`; measured on first use if the index has none)."""
        names = list(names) if names is not None else self.channels
        if self.config.fusion.method != "auto" or len(names) < 2:
            return self.config.fusion
        key = tuple(names)
        if key not in self._fusions:
            from densa.search.calibrate import calibrated_fusion

            self._fusions[key] = calibrated_fusion(self.index, names, self.config.fusion)
        return self._fusions[key]

    def search(self, queries: Sequence[Query], k: int, filter: Filter | None = None) -> Run:
        """Top-``k`` documents of every query as a :class:`Run` (the Retriever protocol)."""
        snapshot = self.index.snapshot
        scored, _ = self._scored(snapshot, [q.text for q in queries], k, filter)
        ids = snapshot.doc_ids(int(r) for s in scored for r in s.ranking.ids)
        run = Run(
            {
                q.id: {ids[int(r)]: float(v) for r, v in zip(s.ranking.ids, s.ranking.scores, strict=True)}
                for q, s in zip(queries, scored, strict=True)
            },
            name=f"densa-{self.config.mode}" + ("-rerank" if self.reranker else ""),
        )
        return run.top(k)

    def hits(self, texts: Sequence[str], k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """Top-``k`` hits with their stored documents; ``passage`` is the best-matching chunk
        of a chunked index."""
        snapshot = self.index.snapshot
        scored, docs = self._scored(snapshot, texts, k, filter)
        wanted = [int(r) for s in scored for r in s.ranking.ids if int(r) not in docs]
        docs.update(snapshot.documents(wanted))
        spans = self._best_spans(snapshot, scored)
        results: list[list[Hit]] = []
        for s in scored:
            rid_of = {docs[int(r)].id: int(r) for r in s.ranking.ids}
            ranked = rank_items(
                (docs[int(r)].id, float(v)) for r, v in zip(s.ranking.ids, s.ranking.scores, strict=True)
            )
            hits = []
            for rank, (doc_id, score) in enumerate(ranked[:k], start=1):
                rid = rid_of[doc_id]
                doc = docs[rid]
                passage = _passage_text(doc, spans.get(s.best_passage.get(rid, -1)))
                hits.append(Hit(doc.id, score, rank, doc.title, doc.text, doc.metadata, passage))
            results.append(hits)
        return results

    def _best_spans(self, snapshot: Snapshot, scored: list[_Scored]) -> dict[int, tuple[int, int, int]]:
        """Where the best passage of each candidate sits in its document (chunked indexes)."""
        if self.index.manifest.chunking is None:
            return {}
        pids = [s.best_passage[int(r)] for s in scored for r in s.ranking.ids if int(r) in s.best_passage]
        return snapshot.passage_spans(pids)

    # ------------------------------------------------------------------ steps
    def _scored(
        self, snapshot: Snapshot, texts: Sequence[str], k: int, filter: Filter | None
    ) -> tuple[list[_Scored], dict[int, Document]]:
        """Each query's top ``k`` (ties kept), and the documents fetched on the way (reranking)."""
        if k < 1:
            raise ConfigError("k must be at least 1")
        if not texts:
            return [], {}
        config = self.config
        names = resolve_channels(config.mode, snapshot.manifest.channels)
        depth = max(k, config.depth) if len(names) > 1 else k
        if self.reranker is not None:
            depth = max(depth, config.rerank_depth)
        allowed = snapshot.allowed(filter)
        per_channel = [self._channel(snapshot, name, texts, depth, allowed, filter) for name in names]
        if len(names) == 1:
            scored = per_channel[0]
        else:
            fusion = self.fusion(names)
            scored = []
            for rankings in zip(*per_channel, strict=True):
                arrays = [(r.ranking.ids, r.ranking.scores.astype(np.float64)) for r in rankings]
                ids, values = fuse_arrays(arrays, names, fusion, "shared")
                best = {rid: pid for r in reversed(rankings) for rid, pid in r.best_passage.items()}
                scored.append(_Scored(top_k_with_ties(ids, values.astype(np.float32), depth), best))
        docs: dict[int, Document] = {}
        if self.reranker is not None:
            scored, docs = self._rerank(snapshot, texts, scored)
        return [s.top(k) for s in scored], docs

    def _channel(
        self,
        snapshot: Snapshot,
        name: str,
        texts: Sequence[str],
        k: int,
        allowed: list[BoolArray | None],
        where: Filter | None,
    ) -> list[_Scored]:
        """One channel's top ``k`` documents per query (passages aggregated to documents)."""
        channel = snapshot.channel(name)
        queries = channel.encode_queries(texts)
        # a document channel, or an index not chunked: a passage's id is its document's row id
        if self.index.kind(name).unit == "document" or snapshot.manifest.chunking is None:
            return [_Scored(r, {}) for r in channel.search(queries, k, allowed, where)]
        total = sum(v.passages for v in snapshot.views)
        want = min(k * 4 + 16, total)
        how = self.config.aggregate
        while True:
            found = channel.search(queries, want, allowed, where)
            out = []
            for units in found:
                owners = snapshot.passage_documents(units.ids)
                rids, scores, best = aggregate(units.ids, units.scores, owners, how, self.config.top_passages)
                best_of = dict(zip(rids.tolist(), best.tolist(), strict=True))
                out.append(_Scored(top_k_with_ties(rids, scores, k), best_of))
            # enough documents, or the channel had no more passages to give
            done = all(len(s.ranking) >= k or len(u) < want for s, u in zip(out, found, strict=True))
            if want >= total or done:
                return out
            want = min(want * 4, total)

    def _rerank(
        self, snapshot: Snapshot, texts: Sequence[str], scored: list[_Scored]
    ) -> tuple[list[_Scored], dict[int, Document]]:
        assert self.reranker is not None
        depth = self.config.rerank_depth
        with_ties = [s.top(depth) for s in scored]
        docs = snapshot.documents(int(r) for s in with_ties for r in s.ranking.ids)
        tops = [_cut_by_document_id(s, docs, depth) for s in with_ties]  # exactly `depth` each
        spans = self._best_spans(snapshot, tops)
        pairs = [
            (
                text,
                _passage_text(docs[int(r)], spans.get(s.best_passage.get(int(r), -1)))
                or docs[int(r)].full_text,
            )
            for text, s in zip(texts, tops, strict=True)
            for r in s.ranking.ids
        ]
        new_scores = np.asarray(self.reranker.score(pairs), dtype=np.float64)
        weight = self.config.rerank_weight
        out, at = [], 0
        for s in tops:
            ids, first = s.ranking.ids, s.ranking.scores.astype(np.float64)
            mine = new_scores[at : at + len(ids)]
            at += len(ids)
            if weight < 1:  # z-scores over the candidates (weighted_arrays returns ids sorted)
                ids, mine = weighted_arrays([(ids, mine), (ids, first)], [weight, 1 - weight], "zscore")
            out.append(_Scored(top_k_with_ties(ids, mine.astype(np.float32), len(ids)), s.best_passage))
        return out, docs


def _cut_by_document_id(scored: _Scored, docs: dict[int, Document], k: int) -> _Scored:
    """The best ``k`` candidates, ties broken by document id as trec_eval ranks them."""
    rid_of = {docs[int(r)].id: int(r) for r in scored.ranking.ids}
    pairs = zip(scored.ranking.ids.tolist(), scored.ranking.scores.tolist(), strict=True)
    ranked = rank_items((docs[r].id, s) for r, s in pairs)[:k]
    ids = np.asarray([rid_of[d] for d, _ in ranked], dtype=np.int64)
    return _Scored(UnitScores(ids, np.asarray([s for _, s in ranked], np.float32)), scored.best_passage)


def _passage_text(doc: Document, span: tuple[int, int, int] | None) -> str:
    """The text of a document's best passage (``""`` when the index is not chunked)."""
    if span is None:
        return ""
    _, start, end = span
    return doc.text[start:end]
