"""Hard-negative mining: top-ranked passages that are not judged relevant (DPR, §3.2).

DPR trains with "BM25 hard negatives": for each question, the highest-ranked BM25
passages that are not positives. Judged positives are never used as negatives, and a
candidate scoring almost as high as a positive can be skipped, since it is often an
unjudged relevant passage (a false negative).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from densa.corpus.beir import BeirDataset
from densa.corpus.readers import read_corpus
from densa.errors import ConfigError, DensaError
from densa.index.channels.bm25 import bm25_top_k
from densa.train.data import Passage, TrainingExample
from densa.types import Document, Qrels, Query, Run

__all__ = ["MinerKind", "MiningConfig", "bm25_run", "mine_dataset", "mine_negatives"]

MinerKind = Literal["bm25", "dense", "hybrid"]


@dataclass(frozen=True)
class MiningConfig:
    """How to mine.

    Parameters
    ----------
    miner
        Ranking that proposes negatives: ``bm25``, ``dense`` or ``hybrid``.
    depth
        How deep in each ranking to look.
    per_query
        Hard negatives kept per question.
    relative_margin
        False-negative guard: skip a candidate whose score exceeds ``(1 - margin)`` times
        the best retrieved positive's score (when a positive is retrieved with a positive
        score). ``None`` turns the guard off.
    """

    miner: MinerKind = "bm25"
    depth: int = 30
    per_query: int = 4
    relative_margin: float | None = 0.05

    def __post_init__(self) -> None:
        if self.miner not in ("bm25", "dense", "hybrid"):
            raise ConfigError(f"miner must be bm25, dense or hybrid, got {self.miner!r}")
        if self.depth < 1 or self.per_query < 1:
            raise ConfigError("depth and per_query must be positive")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ConfigError("relative_margin must be in [0, 1)")


def mine_negatives(
    queries: Sequence[Query],
    qrels: Qrels,
    run: Run,
    documents: Mapping[str, Document],
    config: MiningConfig,
) -> list[TrainingExample]:
    """One training example per query that has a relevant document in ``documents``.

    Every passage keeps the score ``run`` gave it (a positive outside the top ``depth`` has
    none), so the mining ranking can be a teacher (``train-reranker --loss distill``).
    """
    examples = []
    for query in queries:
        positives = [documents[d] for d in sorted(qrels.relevant(query.id)) if d in documents]
        if not positives:
            continue
        relevant = qrels.relevant(query.id)
        ranked = run.ranked(query.id, config.depth)
        scored = {h.doc_id: h.score for h in ranked}
        positive_scores = [h.score for h in ranked if h.doc_id in relevant]
        ceiling = None
        if config.relative_margin is not None and positive_scores and max(positive_scores) > 0:
            ceiling = (1 - config.relative_margin) * max(positive_scores)
        negatives = []
        for hit in ranked:
            if hit.doc_id in relevant or hit.doc_id not in documents:
                continue
            if ceiling is not None and hit.score > ceiling:
                continue
            negatives.append(Passage.of(documents[hit.doc_id], hit.score))
            if len(negatives) == config.per_query:
                break
        examples.append(
            TrainingExample(
                question=query.text,
                positives=tuple(Passage.of(p, scored.get(p.id)) for p in positives),
                hard_negatives=tuple(negatives),
                id=query.id,
            )
        )
    return examples


def bm25_run(documents: Mapping[str, Document], queries: Sequence[Query], depth: int) -> Run:
    """BM25 over an in-memory corpus (no index folder needed)."""
    ids = list(documents)
    found = bm25_top_k([documents[i].full_text for i in ids], [q.text for q in queries], depth)
    return Run(
        {
            q.id: {ids[int(r)]: float(s) for r, s in zip(f.ids, f.scores, strict=True)}
            for q, f in zip(queries, found, strict=True)
        },
        "bm25",
    ).top(depth)


def mine_dataset(
    dataset: BeirDataset, split: str, config: MiningConfig, index: Path | None = None
) -> list[TrainingExample]:
    """Mine hard negatives for ``split`` of a BEIR dataset.

    BM25 mining runs in memory; dense and hybrid mining need an index of the dataset's
    corpus (``densa index``), passed as ``index``.
    """
    from densa.index.index import Index
    from densa.search import SearchConfig, Searcher

    documents = {d.id: d for d in read_corpus(dataset.corpus_path)}
    queries = dataset.queries(split)
    if index is None:
        if config.miner != "bm25":
            raise DensaError(f"{config.miner} mining needs --index (an index of the dataset's corpus)")
        run = bm25_run(documents, queries, config.depth)
    else:
        run = Searcher(Index.open(index), SearchConfig(mode=config.miner)).search(queries, config.depth)
    return mine_negatives(queries, dataset.qrels(split), run, documents, config)
