"""The ``bm25`` channel: BM25 (Robertson & Zaragoza 2009) over postings kept per segment.

Text analysis is bm25s's (scikit-learn's word pattern, lower-cased, English stop words,
Snowball stemming through PyStemmer), so terms are exactly those of a bm25s index. The
index is not bm25s's precomputed score matrix: those scores bake in the collection's
document frequencies and average length, which change with every added or deleted
document. Each segment keeps, as Lucene does, raw *postings* (per term: the rows that
contain it and how often) and document lengths; the statistics are combined across the
snapshot's segments at query time, counting only live (not deleted) documents. Scores
therefore equal those of a fresh build over the same live documents, and equal bm25s's
own for a single segment (a test checks both).

Part files (``SEGMENT/<channel>/``), NumPy arrays memory-mapped on open (no pickle):

=================  ==========================================================
``terms.bin``      the vocabulary, sorted, UTF-8, one term after another
``term_ends.npy``  byte offset where each term ends, shape ``(V,)``
``offsets.npy``    where each term's postings start, shape ``(V + 1,)``
``rows.npy``       local document row of each posting, grouped by term
``tfs.npy``        term frequency of each posting
``lengths.npy``    tokens per document (after stop words), shape ``(rows,)``
``bm25.json``      the settings and counts
=================  ==========================================================
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from densa.errors import ConfigError, IndexDamagedError
from densa.index.channels.base import (
    BoolArray,
    BuildJob,
    OpenOptions,
    SegmentView,
    Unit,
    UnitScores,
    top_k_with_ties,
)
from densa.index.store import Filter
from densa.types import Document

__all__ = ["FACTORY", "Analyzer", "BM25Config", "BM25Kind", "Postings", "bm25_top_k"]

Method = Literal["lucene", "robertson", "atire"]
_META = "bm25.json"
_ARRAYS = ("term_ends", "offsets", "rows", "tfs", "lengths")


@dataclass(frozen=True)
class BM25Config:
    """BM25 parameters and text analysis (the ``bm25`` channel kind).

    Parameters
    ----------
    k1
        Term-frequency saturation.
    b
        Document-length normalisation.
    method
        Scoring variant, as bm25s names them (Kamphuis et al. 2020): ``lucene`` (default,
        as Pyserini/Anserini), ``robertson`` or ``atire``.
    stemmer
        Snowball stemmer language, or ``None`` to keep words as they are.
    stopwords
        Stop-word list language (``en``), or ``None``.
    """

    kind: ClassVar[str] = "bm25"

    k1: float = 1.5
    b: float = 0.75
    method: Method = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ConfigError("BM25 needs k1 >= 0 and 0 <= b <= 1")
        if self.method not in ("lucene", "robertson", "atire"):
            raise ConfigError(f"unknown BM25 method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25Config:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class Analyzer:
    """Texts -> lists of terms, exactly as ``bm25s.tokenize`` makes them."""

    def __init__(self, config: BM25Config) -> None:
        self.config = config
        self._stemmer: Any = None
        if config.stemmer is not None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(config.stemmer)

    def terms(self, texts: Sequence[str]) -> list[list[str]]:
        import bm25s

        if not texts:
            return []
        tokens: list[list[str]] = bm25s.tokenize(
            list(texts),
            stopwords=self.config.stopwords or [],
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        return tokens


# --------------------------------------------------------------------------- postings
@dataclass(frozen=True)
class Postings:
    """One segment's inverted index: the sorted vocabulary, postings and document lengths."""

    terms: bytes
    term_ends: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int32]
    tfs: npt.NDArray[np.int32]
    lengths: npt.NDArray[np.int32]

    @property
    def vocabulary_size(self) -> int:
        return len(self.term_ends)

    @classmethod
    def from_ids(
        cls,
        vocabulary: Sequence[str],
        term_ids: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int32],
    ) -> Postings:
        """From every token of every document: ``term_ids`` (into ``vocabulary``, in document
        order) and ``lengths`` (tokens per document)."""
        rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        order = sorted(range(len(vocabulary)), key=vocabulary.__getitem__)  # code point = UTF-8 order
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        ones = np.ones(len(rows), np.int64)
        return cls._build([vocabulary[i] for i in order], rank[term_ids], rows, ones, lengths)

    @classmethod
    def _build(
        cls,
        vocabulary: Sequence[str],
        term_ids: npt.NDArray[np.int64],
        rows: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int32],
    ) -> Postings:
        """Sorted vocabulary, and (term, row, count) triples in any order (repeats summed)."""
        order = np.lexsort((rows, term_ids))
        term_ids, rows, counts = term_ids[order], rows[order], counts[order]
        if len(term_ids):
            new = np.r_[True, (term_ids[1:] != term_ids[:-1]) | (rows[1:] != rows[:-1])]
            starts = np.flatnonzero(new)
            tfs = np.add.reduceat(counts, starts)
            term_ids, rows = term_ids[starts], rows[starts]
        else:
            tfs = counts
        present = np.unique(term_ids)  # terms whose every posting was dropped leave the vocabulary
        if len(present) != len(vocabulary):
            remap = np.full(len(vocabulary), -1, np.int64)
            remap[present] = np.arange(len(present))
            term_ids = remap[term_ids]
            vocabulary = [vocabulary[i] for i in present]
        encoded = [t.encode("utf-8") for t in vocabulary]
        return cls(
            terms=b"".join(encoded),
            term_ends=np.cumsum([len(e) for e in encoded], dtype=np.int64),
            offsets=np.searchsorted(term_ids, np.arange(len(vocabulary) + 1)).astype(np.int64),
            rows=rows.astype(np.int32),
            tfs=tfs.astype(np.int32),
            lengths=np.asarray(lengths, dtype=np.int32),
        )

    def term(self, i: int) -> str:
        start = int(self.term_ends[i - 1]) if i else 0
        return self.terms[start : int(self.term_ends[i])].decode("utf-8")

    def vocabulary(self) -> list[str]:
        ends = self.term_ends.tolist()
        starts = [0, *ends[:-1]] if ends else []
        return [self.terms[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)]

    def find(self, term: str) -> int:
        """The local id of ``term``, or -1 (binary search over the sorted UTF-8 vocabulary)."""
        key = term.encode("utf-8")
        low, high = 0, len(self.term_ends)
        while low < high:
            mid = (low + high) // 2
            start = int(self.term_ends[mid - 1]) if mid else 0
            if self.terms[start : int(self.term_ends[mid])] < key:
                low = mid + 1
            else:
                high = mid
        return low if low < len(self.term_ends) and self.term(low) == term else -1

    def postings(self, term_id: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """Rows containing the term, and its frequency in each."""
        a, b = int(self.offsets[term_id]), int(self.offsets[term_id + 1])
        return self.rows[a:b], self.tfs[a:b]

    def save(self, folder: Path, config: BM25Config) -> int:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "terms.bin").write_bytes(self.terms)
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name), allow_pickle=False)
        meta = {"config": config.to_dict(), "documents": len(self.lengths), "terms": self.vocabulary_size}
        (folder / _META).write_text(json.dumps(meta), encoding="utf-8")
        return sum(p.stat().st_size for p in folder.iterdir())

    @classmethod
    def load(cls, folder: Path) -> Postings:
        try:
            meta = json.loads((folder / _META).read_text(encoding="utf-8"))
            # plain ndarray views of the mapped files: numpy.memmap's Python-level __getitem__
            # costs microseconds per element read (the vocabulary's binary search reads many)
            arrays = {
                name: np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                for name in _ARRAYS
            }
            terms = (folder / "terms.bin").read_bytes()
        except (OSError, ValueError) as exc:
            raise IndexDamagedError(f"{folder}: BM25 part missing or damaged ({exc})") from None
        postings = cls(terms=terms, **arrays)
        n_terms, n_post = postings.vocabulary_size, len(postings.rows)
        if (
            len(postings.lengths) != meta.get("documents")
            or len(postings.offsets) != n_terms + 1
            or len(postings.tfs) != n_post
            or (
                n_terms and (int(postings.offsets[-1]) != n_post or int(postings.term_ends[-1]) != len(terms))
            )
        ):
            raise IndexDamagedError(f"{folder}: BM25 part files do not agree with each other (damaged)")
        return postings


def merge_postings(sources: Sequence[tuple[Postings, BoolArray]]) -> Postings:
    """One part holding the kept rows of each source, in order (no re-tokenising)."""
    vocabularies = [p.vocabulary() for p, _ in sources]
    merged = sorted(set().union(*vocabularies))
    position = {t: i for i, t in enumerate(merged)}
    all_terms, all_rows, all_tfs, lengths = [], [], [], []
    offset = 0
    for (postings, keep), vocabulary in zip(sources, vocabularies, strict=True):
        new_row = np.cumsum(keep, dtype=np.int64) - 1 + offset
        to_merged = np.asarray([position[t] for t in vocabulary], dtype=np.int64)
        term_of = np.repeat(to_merged, np.diff(postings.offsets))
        kept = keep[postings.rows]
        all_terms.append(term_of[kept])
        all_rows.append(new_row[postings.rows[kept]])
        all_tfs.append(np.asarray(postings.tfs)[kept].astype(np.int64))
        lengths.append(np.asarray(postings.lengths)[keep])
        offset += int(keep.sum())
    return Postings._build(
        merged,
        np.concatenate(all_terms),
        np.concatenate(all_rows),
        np.concatenate(all_tfs),
        np.concatenate(lengths).astype(np.int32),
    )


# --------------------------------------------------------------------------- scoring
def _idf(method: Method, df: npt.NDArray[np.float64], n: float) -> npt.NDArray[np.float64]:
    if method == "lucene":
        return np.log1p((n - df + 0.5) / (df + 0.5))
    if method == "robertson":
        return np.log(np.maximum((n - df + 0.5) / (df + 0.5), 1.0))
    return np.log(n / df)  # atire


def _term_weight(
    config: BM25Config, tf: npt.NDArray[Any], length: npt.NDArray[Any], average: float
) -> npt.NDArray[np.float64]:
    tf = tf.astype(np.float64)
    norm = config.k1 * (1 - config.b + config.b * length / average)
    if config.method == "atire":
        weight: npt.NDArray[np.float64] = tf * (config.k1 + 1) / (tf + norm)
        return weight
    return tf / (tf + norm)


@dataclass(frozen=True)
class _Part:
    """A segment's postings as one snapshot sees them."""

    postings: Postings
    first_row: int
    live: BoolArray | None
    live_docs: int
    live_length: int


#: A term's postings in one part: the rows holding it and their weights.
_Weighed = tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class _TermScores:
    """What one term adds to the queries that hold it, on one snapshot: per part, the rows
    holding it and their BM25 weights, idf included (``None`` where the part lacks it)."""

    parts: tuple[_Weighed | None, ...]
    postings: int


class BM25Channel:
    """BM25 over the parts of one snapshot, with collection statistics of the live documents.

    A term's weights depend only on the snapshot (its idf and the average length), so they
    are computed the first time a query asks for the term and kept, most recently used
    first, up to :attr:`CACHED_POSTINGS` postings in all: the next queries with that term
    read them instead of looking it up in every part's vocabulary and weighing its postings
    again (Lucene keeps per-term state between queries the same way). Thread-safe.
    """

    #: Postings whose weights a snapshot keeps (8 bytes each: 16 MiB).
    CACHED_POSTINGS: ClassVar[int] = 1 << 21

    def __init__(self, config: BM25Config, parts: Sequence[_Part]) -> None:
        self.config = config
        self.analyzer = Analyzer(config)
        self._parts = parts
        self.documents = sum(p.live_docs for p in parts)
        total = sum(p.live_length for p in parts)
        self.average_length = total / self.documents if self.documents else 1.0
        self._cache: OrderedDict[str, _TermScores | None] = OrderedDict()
        self._cached = 0
        self._cache_lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str]) -> list[list[str]]:
        return self.analyzer.terms(texts)

    def _term_scores(self, terms: set[str]) -> dict[str, _TermScores]:
        """The scores of each of ``terms`` that some live document holds (cached)."""
        out: dict[str, _TermScores] = {}
        missing = []
        with self._cache_lock:
            for term in terms:
                if term in self._cache:
                    self._cache.move_to_end(term)
                    if (cached := self._cache[term]) is not None:
                        out[term] = cached
                else:
                    missing.append(term)
        if not missing:
            return out
        computed = self._weigh(missing)
        with self._cache_lock:
            for term, scores in computed.items():
                if term not in self._cache:
                    self._cache[term] = scores
                    self._cached += scores.postings if scores is not None else 0
            while self._cached > self.CACHED_POSTINGS and self._cache:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= dropped.postings if dropped is not None else 0
        out.update({t: s for t, s in computed.items() if s is not None})
        return out

    def _weigh(self, terms: list[str]) -> dict[str, _TermScores | None]:
        """Each term's scores over every part (``None``: no live document holds it)."""
        out: dict[str, _TermScores | None] = {}
        for term in terms:
            postings = []  # per part: (rows, tfs) or None
            df = 0  # live documents holding the term, over every part
            for part in self._parts:
                t = part.postings.find(term)
                found = part.postings.postings(t) if t >= 0 else None
                postings.append(found)
                if found is not None:
                    df += len(found[0]) if part.live is None else int(np.count_nonzero(part.live[found[0]]))
            if not df:
                out[term] = None
                continue
            idf = float(_idf(self.config.method, np.asarray([df], float), self.documents)[0])
            parts: list[_Weighed | None] = []
            for part, found in zip(self._parts, postings, strict=True):
                if found is None:
                    parts.append(None)
                    continue
                rows, tfs = found
                lengths = part.postings.lengths[rows]
                parts.append((rows, idf * _term_weight(self.config, tfs, lengths, self.average_length)))
            out[term] = _TermScores(tuple(parts), sum(len(p[0]) for p in parts if p is not None))
        return out

    def search(
        self,
        queries: list[list[str]],
        k: int,
        allowed: Sequence[BoolArray | None],
        where: Filter | None = None,
    ) -> list[UnitScores]:
        del where  # the masks say it all
        if len(allowed) != len(self._parts):
            raise ValueError(f"{len(allowed)} masks for {len(self._parts)} segments")
        scores_of = self._term_scores({t for q in queries for t in q})
        results = []
        for terms in queries:
            held = [scores_of[t] for t in terms if t in scores_of]
            ids, scores = [], []
            for p, (part, mask) in enumerate(zip(self._parts, allowed, strict=True)):
                weighed = [found for s in held if (found := s.parts[p]) is not None]
                local = self._score(part, weighed, mask, k)
                if local is not None:
                    ids.append(local.ids + part.first_row)
                    scores.append(local.scores)
            results.append(
                top_k_with_ties(np.concatenate(ids), np.concatenate(scores), k) if ids else UnitScores.empty()
            )
        return results

    def _score(
        self,
        part: _Part,
        weighed: list[_Weighed],
        mask: BoolArray | None,
        k: int,
    ) -> UnitScores | None:
        """The part's ``k`` best rows (ties kept) among those ``weighed`` (a query's terms: their
        rows in the part and weights) that pass ``mask``."""
        if not weighed:
            return None
        touched = sum(len(rows) for rows, _ in weighed)
        if touched * 8 > len(part.postings.lengths):  # many postings: a dense accumulator is cheaper
            # float64 as the sparse path below: which path a segment takes depends on its size, and
            # an index built by updates must score exactly as a fresh build
            dense = np.zeros(len(part.postings.lengths), np.float64)
            for rows, weight in weighed:
                dense[rows] += weight  # rows are unique within one term's postings
            if mask is not None:
                dense[~mask] = 0
            values = dense.astype(np.float32)  # compared in float32, as the sparse path does
            found = np.flatnonzero(values > 0)  # (partitioning all rows, zeros too, costs more)
            return top_k_with_ties(found.astype(np.int64), values[found], k)
        rows = np.concatenate([rows for rows, _ in weighed]).astype(np.int64)
        unique, inverse = np.unique(rows, return_inverse=True)
        sums = np.bincount(inverse, weights=np.concatenate([w for _, w in weighed])).astype(np.float32)
        keep = sums > 0
        if mask is not None:
            keep &= mask[unique]
        return top_k_with_ties(unique[keep].astype(np.int64), sums[keep], k)


# --------------------------------------------------------------------------- the kind
class _Collector:
    """Tokenises batches of documents, numbering terms as they first occur."""

    def __init__(self, analyzer: Analyzer) -> None:
        self._analyzer = analyzer
        self._position: dict[str, int] = {}
        self._ids: list[npt.NDArray[np.int64]] = []
        self._lengths: list[int] = []

    def add(self, texts: Sequence[str]) -> None:
        position = self._position
        for terms in self._analyzer.terms(texts):
            ids = (position.setdefault(t, len(position)) for t in terms)
            self._ids.append(np.fromiter(ids, np.int64, len(terms)))
            self._lengths.append(len(terms))

    def postings(self) -> Postings:
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)
        return Postings.from_ids(list(self._position), ids, np.asarray(self._lengths, np.int32))


class _Writer:
    """A segment's BM25 part: collects every batch, writes the postings at the end."""

    def __init__(self, kind: BM25Kind, folder: Path) -> None:
        self._config = kind.config
        self._folder = folder
        self._collector = _Collector(kind.analyzer)

    def add(self, texts: Sequence[str], documents: Sequence[Document]) -> None:
        self._collector.add(texts)

    def finish(self) -> dict[str, Any]:
        postings = self._collector.postings()
        return {"bytes": postings.save(self._folder, self._config), "terms": postings.vocabulary_size}


class BM25Kind:
    """The ``bm25`` channel kind: one postings part per segment, scored over whole documents."""

    unit: Unit = "document"

    def __init__(self, config: BM25Config) -> None:
        self.config = config
        self.analyzer = Analyzer(config)

    def settings(self) -> dict[str, Any]:
        return self.config.to_dict()

    def part_writer(self, folder: Path, job: BuildJob) -> _Writer:
        return _Writer(self, folder)

    def merge_parts(
        self, sources: Sequence[tuple[Path, BoolArray]], folder: Path, bulk: bool
    ) -> dict[str, Any]:
        merged = merge_postings([(Postings.load(path), keep) for path, keep in sources])
        return {"bytes": merged.save(folder, self.config), "terms": merged.vocabulary_size}

    def open(self, segments: Sequence[SegmentView], name: str) -> BM25Channel:
        parts = []
        for view in segments:
            folder = view.folder / name
            postings: Postings = view.cached(f"{name}:postings", partial(Postings.load, folder))
            if len(postings.lengths) != view.rows:
                raise IndexDamagedError(
                    f"{folder}: BM25 holds {len(postings.lengths)} documents, the segment {view.rows}"
                )
            live_docs, live_length = view.cached(
                f"{name}:live:{view.deletes}", partial(_live_stats, postings, view.live)
            )
            parts.append(_Part(postings, view.first_row, view.live, live_docs, live_length))
        return BM25Channel(self.config, parts)


def _live_stats(postings: Postings, live: BoolArray | None) -> tuple[int, int]:
    """Live documents of a part, and their total length in tokens."""
    lengths = np.asarray(postings.lengths, np.int64)
    if live is None:
        return len(lengths), int(lengths.sum())
    return int(live.sum()), int(lengths[live].sum())


class _Factory:
    def from_config(self, config: BM25Config, sample: Callable[[], Sequence[str]] | None = None) -> BM25Kind:
        if not isinstance(config, BM25Config):
            raise ConfigError(f"a bm25 channel needs a BM25Config, got {type(config).__name__}")
        return BM25Kind(config)

    def from_settings(self, settings: dict[str, Any], options: OpenOptions) -> BM25Kind:
        return BM25Kind(BM25Config.from_dict(settings))


FACTORY = _Factory()


def bm25_top_k(
    texts: Sequence[str], queries: Sequence[str], k: int, config: BM25Config | None = None
) -> list[UnitScores]:
    """BM25 over an in-memory list of texts (no index folder): the top ``k`` positions in
    ``texts`` for each query, e.g. to mine hard negatives."""
    kind = BM25Kind(config or BM25Config())
    collector = _Collector(kind.analyzer)
    collector.add(texts)
    postings = collector.postings()
    lengths = np.asarray(postings.lengths, np.int64)
    channel = BM25Channel(kind.config, [_Part(postings, 0, None, len(lengths), int(lengths.sum()))])
    return channel.search(channel.encode_queries(queries), k, [None])
