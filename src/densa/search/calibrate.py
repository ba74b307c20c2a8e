"""Fusion weights without labels: each channel measured on pseudo-queries cut from the corpus.

How much to trust each channel differs by collection (on the MS MARCO subset the bundled
dense model is 0.07 nDCG@10 ahead of BM25; on SciFact BM25 is 0.04 ahead), and a user has no
relevance labels to tune on. densa asks the corpus instead, with the inverse cloze task
(Lee, Chang & Toutanova 2019, *Latent Retrieval for Weakly Supervised Open Domain QA*):

1. take ``queries`` documents (those whose id hashes lowest, so the sample does not depend on
   the order documents were added in), cut one sentence out of each;
2. index what is left of each document in a small side index with the same channels
   (:meth:`~densa.index.Index.build_like`) and search it with the cut sentences, one channel
   at a time: each sentence's own document is its one relevant answer;
3. fuse the channels' rankings with every normalisation and every convex combination of
   weights on a grid (convex fusion as in Bruch, Gai & Ingber 2023, *An Analysis of Fusion
   Functions for Hybrid Retrieval*) and keep the one with the best MRR@10; ties go to the
   weights nearest equal.

The rankings are kept in ``INDEX/fusion-calibration.npz`` (arrays and one JSON header, no
pickle), so any later choice of channels is a grid search over stored arrays, not a new
encoding. They stay until a channel they measured changes (or ``densa calibrate`` measures
again): the weights are an estimate of the collection, not of each update.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.errors import DensaError
from densa.fuse.fusion import FusionConfig
from densa.fuse.weighted import Normalization, normalized_matrix
from densa.index import Index
from densa.types import Document, Query

__all__ = [
    "CALIBRATION_FILE",
    "MIN_QUERIES",
    "PSEUDO_QUERIES",
    "Calibration",
    "calibrate",
    "calibrated_fusion",
    "describe",
    "inverse_cloze",
    "measure",
    "sample_documents",
]

CALIBRATION_FILE = "fusion-calibration.npz"
_VERSION = 1
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_MIN_WORDS = 20  # documents shorter than this give no usable (sentence, rest) pair
_QUERY_WORDS = 32  # a cut sentence longer than this is trimmed (queries are short)
_NORMALIZATIONS: tuple[Normalization, ...] = ("zscore", "minmax")
#: Pseudo-queries a measurement cuts from the corpus by default.
PSEUDO_QUERIES = 400
#: Fewer pseudo-queries than this measure nothing: such an index fuses with equal weights.
MIN_QUERIES = 50


@dataclass(frozen=True)
class Calibration:
    """Each channel's ranking of the side index for every pseudo-query.

    ``ids[name]`` is ``[queries, depth]`` side-document numbers (``-1`` past the end of a
    shorter ranking), ``scores[name]`` their scores; pseudo-query ``i``'s answer is side
    document ``i``. ``channels`` holds each measured channel's manifest record, to tell
    when a measurement no longer describes the index.
    """

    channels: Mapping[str, dict[str, Any]]
    ids: Mapping[str, npt.NDArray[np.int64]]
    scores: Mapping[str, npt.NDArray[np.float64]]
    _chosen: dict[tuple[tuple[str, ...], tuple[str, ...]], FusionConfig] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def queries(self) -> int:
        return len(next(iter(self.ids.values()))) if self.ids else 0

    def covers(self, index: Index, names: Sequence[str]) -> bool:
        """Whether this measured ``names`` as they are in ``index`` now."""
        return all(
            name in self.channels and self.channels[name] == index.channels[name].to_dict() for name in names
        )

    def mrr(self, names: Sequence[str], weights: Sequence[float], normalization: Normalization) -> float:
        """MRR@10 of fusing ``names`` with ``weights`` on the pseudo-queries."""
        columns = self._columns(names, normalization)
        return float(_mrr_at_10(columns, np.asarray([weights], np.float64))[0])

    def choose(
        self, names: Sequence[str], normalizations: Sequence[Normalization] = _NORMALIZATIONS
    ) -> FusionConfig:
        """The weighted fusion of ``names`` that ranks the pseudo-queries' answers best
        (computed once per choice of channels: searches ask for it on every request)."""
        key = (tuple(names), tuple(normalizations))
        if key not in self._chosen:
            self._chosen[key] = self._choose(names, normalizations)
        return self._chosen[key]

    def _choose(self, names: Sequence[str], normalizations: Sequence[Normalization]) -> FusionConfig:
        grid = _simplex(len(names))
        uniform = np.full(len(names), 1.0 / len(names))
        best: tuple[float, float, int] | None = None
        chosen = FusionConfig(method="weighted", normalization=normalizations[0])
        for order, normalization in enumerate(normalizations):
            mrr = _mrr_at_10(self._columns(names, normalization), grid)
            for row in np.flatnonzero(mrr >= mrr.max() - 1e-12):
                key = (-float(mrr[row]), float(np.abs(grid[row] - uniform).sum()), order)
                if best is None or key < best:
                    best = key
                    weights = {n: round(float(w), 4) for n, w in zip(names, grid[row], strict=True)}
                    chosen = FusionConfig(method="weighted", weights=weights, normalization=normalization)
        return chosen

    def _columns(
        self, names: Sequence[str], normalization: Normalization
    ) -> list[tuple[npt.NDArray[np.float64], int | None]]:
        """Per query: the ``[channels, candidates]`` matrix of normalised scores that weighted
        fusion weighs (:func:`~densa.fuse.weighted.normalized_matrix`) and the answer's
        column, ``None`` where no channel found it."""
        missing = [n for n in names if n not in self.ids]
        if missing:
            raise DensaError(f"fusion calibration has no ranking of channel(s) {', '.join(missing)}")
        out: list[tuple[npt.NDArray[np.float64], int | None]] = []
        for q in range(self.queries):
            rankings = []
            for name in names:
                ids, scores = self.ids[name][q], self.scores[name][q]
                keep = ids >= 0
                rankings.append((ids[keep], scores[keep]))
            union, matrix = normalized_matrix(rankings, normalization)
            at = int(np.searchsorted(union, q))
            out.append((matrix, at if at < len(union) and union[at] == q else None))
        return out

    # ----------------------------------------------------------------- files
    def save(self, index_path: Path) -> None:
        """Write ``INDEX/fusion-calibration.npz`` atomically (a reader never sees half a file)."""
        header = {"version": _VERSION, "names": list(self.ids), "channels": dict(self.channels)}
        arrays: dict[str, Any] = {"header": np.array(json.dumps(header, sort_keys=True))}
        for i, name in enumerate(self.ids):
            arrays[f"ids_{i}"] = self.ids[name]
            arrays[f"scores_{i}"] = self.scores[name]
        fd, tmp = tempfile.mkstemp(prefix=".calibration-", suffix=".npz", dir=index_path)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, index_path / CALIBRATION_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, index_path: Path) -> Calibration | None:
        """The stored calibration, or ``None`` when there is none or it cannot be read (it is
        derived data: measuring again replaces it)."""
        path = index_path / CALIBRATION_FILE
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                if header.get("version") != _VERSION:
                    return None
                names = list(header["names"])
                ids = {n: np.asarray(data[f"ids_{i}"], np.int64) for i, n in enumerate(names)}
                scores = {n: np.asarray(data[f"scores_{i}"], np.float64) for i, n in enumerate(names)}
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        return cls(header["channels"], ids, scores)


def sample_documents(index: Index, n: int) -> list[Document]:
    """The ``n`` live documents of at least 20 words whose ids hash lowest (an order-free sample)."""
    snapshot = index.snapshot
    rids = np.concatenate(
        [
            view.first_row + (np.arange(view.rows) if view.live is None else np.flatnonzero(view.live))
            for view in snapshot.views
        ]
        or [np.zeros(0, np.int64)]
    )
    ids = snapshot.doc_ids(rids.tolist())
    order = sorted(ids, key=lambda rid: hashlib.blake2b(ids[rid].encode(), digest_size=8).digest())
    out: list[Document] = []
    for start in range(0, len(order), 4 * n):
        docs = snapshot.documents(order[start : start + 4 * n])
        out += [docs[r] for r in order[start : start + 4 * n] if len(docs[r].full_text.split()) >= _MIN_WORDS]
        if len(out) >= n:
            break
    return out[:n]


def inverse_cloze(documents: Sequence[Document], seed: int = 0) -> list[tuple[str, str]]:
    """``(query, rest)`` per document: one sentence cut out (at most 32 words) and what is left.
    A document of one sentence gives a 12-word window from its middle instead.

    Examples
    --------
    >>> doc = Document("d1", "Aspirin lowers fever. It also thins the blood. Take it with water.")
    >>> query, rest = inverse_cloze([doc])[0]
    >>> query in doc.text and query not in rest
    True
    """
    rng = random.Random(seed)
    pairs = []
    for doc in documents:
        sentences = [s for s in _SENTENCE.split(doc.text.strip()) if s]
        if len(sentences) >= 2:
            i = rng.randrange(len(sentences))
            query, rest = sentences[i], " ".join(sentences[:i] + sentences[i + 1 :])
        else:
            words = doc.text.split()
            middle = max(0, len(words) // 2 - 6)
            query, rest = (
                " ".join(words[middle : middle + 12]),
                " ".join(words[:middle] + words[middle + 12 :]),
            )
        pairs.append((" ".join(query.split()[:_QUERY_WORDS]), f"{doc.title} {rest}".strip()))
    return pairs


def measure(index: Index, queries: int = PSEUDO_QUERIES, depth: int = 100, seed: int = 0) -> Calibration:
    """Rank the pseudo-queries' side index with every channel of ``index`` (see the module)."""
    from densa.search.config import SearchConfig
    from densa.search.searcher import Searcher

    pairs = inverse_cloze(sample_documents(index, queries), seed)
    if len(pairs) < MIN_QUERIES:
        raise _TooFew(
            f"{index.path}: only {len(pairs)} documents of {_MIN_WORDS}+ words; too few to measure the "
            f"channels for fusion (needs {MIN_QUERIES}; give fusion weights instead)"
        )
    side_docs = [Document(str(i), rest) for i, (_, rest) in enumerate(pairs)]
    pseudo = [Query(str(i), query) for i, (query, _) in enumerate(pairs)]
    ids: dict[str, npt.NDArray[np.int64]] = {}
    scores: dict[str, npt.NDArray[np.float64]] = {}
    with tempfile.TemporaryDirectory(prefix="densa-calibrate-") as tmp:
        side = index.build_like(side_docs, Path(tmp) / "side")
        try:
            for name in index.channels:
                run = Searcher(side, SearchConfig(mode=name)).search(pseudo, depth)
                ids[name] = np.full((len(pseudo), depth), -1, np.int64)
                scores[name] = np.full((len(pseudo), depth), np.nan, np.float64)
                for q, query in enumerate(pseudo):
                    ranked = sorted(run.scores.get(query.id, {}).items(), key=lambda kv: -kv[1])[:depth]
                    ids[name][q, : len(ranked)] = [int(d) for d, _ in ranked]
                    scores[name][q, : len(ranked)] = [s for _, s in ranked]
        finally:
            side.close()
    return Calibration({n: r.to_dict() for n, r in index.channels.items()}, ids, scores)


def calibrate(index: Index, queries: int = PSEUDO_QUERIES) -> Calibration | None:
    """Measure every channel of ``index`` on ``queries`` pseudo-queries now and store the
    result (``densa calibrate``; ``densa index`` and ``add-channel`` call it for an index of
    two or more channels); ``None`` when the corpus is too small to measure."""
    if len(index.channels) < 2:
        return None
    calibration = _measure_if_possible(index, queries)
    if calibration is not None:
        calibration.save(index.path)
    return calibration


def describe(calibration: Calibration | None, names: Sequence[str]) -> str:
    """One line: each channel's MRR@10 on the pseudo-queries and the fusion chosen for ``names``."""
    if calibration is None:
        return (
            f"fusion: too few documents to measure the channels; {' + '.join(names)} fuse with equal weights"
        )
    alone = ", ".join(f"{n} {calibration.mrr([n], [1.0], 'zscore'):.3f}" for n in names)
    if len(names) < 2:
        return f"fusion: MRR@10 on {calibration.queries} pseudo-queries: {alone}"
    chosen = calibration.choose(names)
    weights = chosen.weights_for(names)
    fused = calibration.mrr(names, weights, chosen.normalization or "zscore")
    return (
        f"fusion measured on {calibration.queries} pseudo-queries cut from the corpus (MRR@10: {alone}; "
        f"fused {fused:.3f}): {', '.join(f'{n}={w:g}' for n, w in zip(names, weights, strict=True))}, "
        f"{chosen.normalization}"
    )


def calibrated_fusion(index: Index, names: Sequence[str], given: FusionConfig) -> FusionConfig:
    """The fusion of ``names`` for ``given`` (method ``auto``): its own weights when it has
    them, otherwise the measured ones (measured now and stored if the index has none yet)."""
    if given.weights is not None:
        return FusionConfig(
            method="weighted", weights=given.weights, normalization=given.normalization or "zscore"
        )
    calibration = load_or_measure(index, names)
    if calibration is None:  # too small a corpus to measure: equal weights
        return FusionConfig(method="weighted", normalization=given.normalization or "zscore")
    normalizations = (given.normalization,) if given.normalization else _NORMALIZATIONS
    return calibration.choose(names, normalizations)


def load_or_measure(index: Index, names: Sequence[str]) -> Calibration | None:
    """The index's stored calibration if it covers ``names``; else a new one, stored when the
    folder is writable; ``None`` when the corpus has too few documents to measure."""
    key = str(index.path.resolve())
    stamp, documents = _stamp(index.path), len(index)
    if key in _CACHE:
        cached, cached_stamp, cached_documents = _CACHE[key]
        if cached_stamp == stamp and (
            cached.covers(index, names) if cached is not None else cached_documents == documents
        ):
            return cached
    calibration = Calibration.load(index.path)
    if calibration is None or not calibration.covers(index, names):
        calibration = _measure_if_possible(index)
        if calibration is not None:
            with contextlib.suppress(OSError):  # a read-only index keeps the measurement in memory
                calibration.save(index.path)
    _CACHE.clear()
    _CACHE[key] = (calibration, _stamp(index.path), documents)
    return calibration


def _measure_if_possible(index: Index, queries: int = PSEUDO_QUERIES) -> Calibration | None:
    """:func:`measure`, or ``None`` when the corpus is too small for it."""
    if len(index) < MIN_QUERIES:
        return None
    try:
        return measure(index, queries)
    except _TooFew:
        return None


class _TooFew(DensaError):
    """The corpus has too few documents long enough to cut a pseudo-query from."""


#: The last calibration used, by index folder: (calibration, its file's stamp, the document
#: count it was judged on, which matters only when the corpus was too small to measure).
_CACHE: dict[str, tuple[Calibration | None, tuple[int, int], int]] = {}


def _stamp(index_path: Path) -> tuple[int, int]:
    try:
        stat = (index_path / CALIBRATION_FILE).stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def _simplex(n: int) -> npt.NDArray[np.float64]:
    """Every weight vector of ``n`` non-negative multiples of 0.1 (0.25 past four channels)
    that sums to 1."""
    steps = 10 if n <= 4 else 4
    rows = [c for c in itertools.product(range(steps + 1), repeat=n) if sum(c) == steps]
    return np.asarray(rows, np.float64) / steps


def _mrr_at_10(
    columns: Sequence[tuple[npt.NDArray[np.float64], int | None]], grid: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """MRR@10 of each weight row of ``grid`` over the queries' score matrices and answer
    columns (a candidate tied with the answer counts against it; a missed answer scores 0)."""
    total = np.zeros(len(grid), np.float64)
    for matrix, answer in columns:
        if answer is None:
            continue
        fused = grid @ matrix  # [grid, candidates]
        rank = (fused >= fused[:, answer : answer + 1]).sum(axis=1) - 1  # others at or above it
        total += np.where(rank < 10, 1.0 / (rank + 1), 0.0)
    return total / max(len(columns), 1)
