"""Shared types that travel between densa's stages.

A :class:`Run` holds retrieval scores ``{qid: {docid: score}}`` (BEIR's dict shape) and
converts losslessly to and from TREC run files (``qid Q0 docid rank score tag``).

Examples
--------
>>> run = Run({"q1": {"d1": 2.0, "d2": 3.5}})
>>> [h.doc_id for h in run.ranked("q1")]
['d2', 'd1']
>>> Run.from_trec_lines(run.to_trec_lines()).to_beir() == run.to_beir()
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from densa.errors import InputError

__all__ = ["Document", "Hit", "Qrels", "Query", "Run", "rank_items"]


@dataclass(frozen=True)
class Document:
    """One passage or document of a corpus.

    Parameters
    ----------
    id
        Unique identifier within the corpus.
    text
        Body text (never empty).
    title
        Optional title, encoded in front of the text.
    metadata
        JSON-serialisable fields, kept in the document store and usable as filters.
    """

    id: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("document id must not be empty")
        if not self.text.strip():
            raise ValueError(f"document {self.id!r} has empty text")

    @property
    def full_text(self) -> str:
        """Title and text joined by a space, as BEIR encodes a document."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True)
class Query:
    """A query with an identifier (BEIR ``queries.jsonl`` row)."""

    id: str
    text: str


@dataclass(frozen=True)
class Hit:
    """One ranked result: a document id, its score and 1-based rank, with stored fields.

    ``passage`` is the best-matching chunk when the index splits long documents, else ``""``.
    """

    doc_id: str
    score: float
    rank: int
    title: str = ""
    text: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    passage: str = ""


K = TypeVar("K", str, int)


def rank_items(items: Iterable[tuple[K, float]]) -> list[tuple[K, float]]:
    """Sort ``(doc_id, score)`` pairs as trec_eval does: score descending, ties by id descending.

    Examples
    --------
    >>> rank_items([("a", 1.0), ("c", 2.0), ("b", 1.0)])
    [('c', 2.0), ('b', 1.0), ('a', 1.0)]
    """
    by_id = sorted(items, key=lambda item: item[0], reverse=True)
    return sorted(by_id, key=lambda item: -item[1])


@dataclass(frozen=True)
class Run:
    """Retrieval scores for a set of queries: ``{qid: {docid: score}}``.

    Ranking order is trec_eval's (score descending, ties broken by document id
    descending), so ranks written to a TREC file, cut-offs such as MRR@10, and
    trec_eval itself all agree.
    """

    scores: Mapping[str, Mapping[str, float]]
    name: str = "densa"

    def __post_init__(self) -> None:
        for qid, docs in self.scores.items():
            for docid, score in docs.items():
                if not math.isfinite(score):
                    raise ValueError(f"run score for ({qid!r}, {docid!r}) is not finite: {score}")

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[str]:
        return iter(self.scores)

    def ranked(self, qid: str, k: int | None = None) -> list[Hit]:
        """Hits of one query in rank order (empty when the query has no results)."""
        items = rank_items(self.scores.get(qid, {}).items())
        if k is not None:
            items = items[:k]
        return [Hit(doc_id=d, score=s, rank=i + 1) for i, (d, s) in enumerate(items)]

    def top(self, k: int) -> Run:
        """The same run cut to the best ``k`` documents of each query."""
        return Run(
            {q: {h.doc_id: h.score for h in self.ranked(q, k)} for q in self.scores},
            name=self.name,
        )

    def to_beir(self) -> dict[str, dict[str, float]]:
        """Plain ``{qid: {docid: score}}`` copy."""
        return {q: dict(d) for q, d in self.scores.items()}

    @classmethod
    def from_beir(cls, scores: Mapping[str, Mapping[str, float]], name: str = "densa") -> Run:
        return cls({q: {d: float(s) for d, s in docs.items()} for q, docs in scores.items()}, name)

    @classmethod
    def from_hits(cls, hits: Mapping[str, Iterable[Hit]], name: str = "densa") -> Run:
        return cls({q: {h.doc_id: h.score for h in hs} for q, hs in hits.items()}, name)

    def to_trec_lines(self) -> Iterator[str]:
        """TREC run lines ``qid Q0 docid rank score tag`` (scores with full float precision)."""
        for qid in self.scores:
            for hit in self.ranked(qid):
                yield f"{qid} Q0 {hit.doc_id} {hit.rank} {hit.score!r} {self.name}"

    def write_trec(self, path: str | Path) -> None:
        """Write the run as a TREC run file (written to a temporary name, then renamed)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for line in self.to_trec_lines():
                f.write(line + "\n")
        tmp.replace(path)

    @classmethod
    def from_trec_lines(cls, lines: Iterable[str], source: str = "<lines>") -> Run:
        scores: dict[str, dict[str, float]] = {}
        name = "densa"
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 6:
                raise InputError(
                    source,
                    lineno,
                    f"expected 6 fields 'qid Q0 docid rank score tag', got {len(parts)}",
                )
            qid, _, docid, _, score, name = parts
            try:
                value = float(score)
            except ValueError:
                raise InputError(source, lineno, f"score {score!r} is not a number") from None
            if docid in scores.setdefault(qid, {}):
                raise InputError(source, lineno, f"document {docid!r} appears twice for query {qid!r}")
            scores[qid][docid] = value
        return cls(scores, name)

    @classmethod
    def read_trec(cls, path: str | Path) -> Run:
        """Read a TREC run file; a malformed line raises :class:`InputError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise InputError(str(path), None, "run file not found")
        with path.open(encoding="utf-8") as f:
            return cls.from_trec_lines(f, source=str(path))


@dataclass(frozen=True)
class Qrels:
    """Relevance judgements ``{qid: {docid: grade}}``; grade > 0 means relevant."""

    judgements: Mapping[str, Mapping[str, int]]

    def __len__(self) -> int:
        return len(self.judgements)

    def relevant(self, qid: str) -> set[str]:
        return {d for d, g in self.judgements.get(qid, {}).items() if g > 0}

    def to_beir(self) -> dict[str, dict[str, int]]:
        return {q: dict(d) for q, d in self.judgements.items()}
