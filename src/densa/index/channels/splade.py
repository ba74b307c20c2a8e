"""The ``splade`` channel: learned sparse term weights in an inverted impact index per segment.

Each part holds its passages' SPLADE weights as postings, one row a vocabulary term
(SciPy CSR, ``terms x passages``: ``indptr``, ``indices`` = local passage ids, ``data`` =
weights, float16 on disk). A query's score for a passage is the dot product of the two sparse
vectors, computed as ``query (1 x terms) @ postings``: only the rows of the query's terms are
read, as an impact-ordered inverted index does. Passages no query term reaches are left out
(like BM25, never padded). Merges concatenate the kept postings (exact, no model run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from densa.encode.splade import SpladeEncoder, SpladeSpec
from densa.errors import ConfigError, IndexDamagedError
from densa.index.channels.base import (
    BoolArray,
    BuildJob,
    OpenOptions,
    SegmentView,
    Unit,
    UnitScores,
    check_fingerprint,
    load_part_files,
    load_parts,
    merge_segment_results,
    save_part_files,
    top_k_with_ties,
)
from densa.index.store import Filter
from densa.types import Document

__all__ = ["FACTORY", "ImpactPart", "SpladeChannel", "SpladeKind", "prune"]

_FORMAT = 1
_RECORD = "splade.json"
_ARRAYS = ("indptr", "indices", "data")


@dataclass(frozen=True)
class SpladeChannel:
    """A ``splade`` channel: which sparse model, and how much of each passage to keep.

    Parameters
    ----------
    model
        A SPLADE folder (sentence-transformers sparse encoder) or a loaded
        :class:`~densa.encode.splade.SpladeEncoder`.
    max_terms
        Keep a passage's largest ``max_terms`` weights (``None``: all).
    min_weight
        Drop passage weights below this.
    """

    kind: ClassVar[str] = "splade"

    model: str | SpladeEncoder = ""
    max_terms: int | None = None
    min_weight: float = 0.0
    batch_size: int = 32
    device: str | None = None

    def __post_init__(self) -> None:
        if self.max_terms is not None and self.max_terms < 1:
            raise ConfigError("splade max_terms must be positive")
        if self.min_weight < 0:
            raise ConfigError("splade min_weight must be >= 0")


def prune(documents: Any, max_terms: int | None, min_weight: float) -> Any:
    """``documents`` (CSR, one row a passage) without weights below ``min_weight`` and with at
    most the ``max_terms`` largest weights of each passage (ties at the cut broken by term id)."""
    matrix = documents.tocsr(copy=True)
    if min_weight > 0:
        matrix.data[matrix.data < min_weight] = 0
        matrix.eliminate_zeros()
    if max_terms is not None:
        for row in range(matrix.shape[0]):
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            if end - start > max_terms:
                values = matrix.data[start:end]
                order = np.lexsort((matrix.indices[start:end], -values))
                values[order[max_terms:]] = 0
        matrix.eliminate_zeros()
    return matrix


class ImpactPart:
    """One segment's postings (terms x passages)."""

    def __init__(self, postings: Any) -> None:
        self.postings = postings

    def __len__(self) -> int:
        return int(self.postings.shape[1])

    @classmethod
    def from_documents(cls, documents: Any) -> ImpactPart:
        """From a ``passages x terms`` matrix of weights."""
        return cls(documents.T.tocsr())

    def save(self, folder: Path) -> int:
        arrays = {
            "indptr": self.postings.indptr.astype(np.int64),
            "indices": self.postings.indices.astype(np.int32),
            "data": self.postings.data.astype(np.float16),
        }
        terms, passages = self.postings.shape
        record = {"format": _FORMAT, "terms": terms, "passages": passages, "weights": int(self.postings.nnz)}
        return save_part_files(folder, arrays, _RECORD, record)

    @classmethod
    def load(cls, folder: Path) -> ImpactPart:
        from scipy.sparse import csr_matrix

        record, arrays = load_part_files(folder, _ARRAYS, _RECORD, "splade part", mmap=False)
        try:
            if record.get("format") != _FORMAT:
                raise ValueError(f"unknown format {record.get('format')!r}")
            shape = (int(record["terms"]), int(record["passages"]))
            postings = csr_matrix(
                (arrays["data"].astype(np.float32), arrays["indices"], arrays["indptr"]), shape=shape
            )
            postings.check_format(full_check=False)
        except (ValueError, KeyError) as exc:
            raise IndexDamagedError(f"{folder}: splade part not readable ({exc})") from exc
        return cls(postings)

    def search(self, queries: Any, k: int, allowed: BoolArray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each query's best ``k`` local passages (ties at the cut kept) with a score above 0."""
        scores = (queries @ self.postings).tocsr()
        out = []
        for q in range(scores.shape[0]):
            row = scores.getrow(q)
            ids, values = row.indices.astype(np.int64), row.data.astype(np.float32)
            keep = values > 0
            if allowed is not None:
                keep &= allowed[ids]
            top = top_k_with_ties(ids[keep], values[keep], k)
            out.append((top.ids, top.scores))
        return out


class SpladeKind:
    """A resolved ``splade`` channel: the model's spec and the pruning settings."""

    unit: Unit = "passage"

    def __init__(
        self,
        spec: SpladeSpec,
        max_terms: int | None,
        min_weight: float,
        encoder: SpladeEncoder | None = None,
        options: OpenOptions | None = None,
    ) -> None:
        self.spec = spec
        self.max_terms = max_terms
        self.min_weight = min_weight
        self._encoder = encoder
        self._options = options or OpenOptions()
        self.notes: list[str] = []

    def settings(self) -> dict[str, Any]:
        return {"encoder": self.spec.to_dict(), "max_terms": self.max_terms, "min_weight": self.min_weight}

    @property
    def encoder(self) -> SpladeEncoder:
        if self._encoder is None:
            encoder = SpladeEncoder(
                self.spec.model, batch_size=self._options.batch_size, device=self._options.device
            )
            check_fingerprint("splade", self.spec.model, self.spec.fingerprint, encoder.spec.fingerprint)
            self._encoder = encoder
        return self._encoder

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    def part_writer(self, folder: Path, job: BuildJob) -> SpladeWriter:
        return SpladeWriter(self, folder, job)

    def write(self, documents: Any, folder: Path, truncated: int) -> dict[str, Any]:
        part = ImpactPart.from_documents(prune(documents, self.max_terms, self.min_weight))
        return {"bytes": part.save(folder), "weights": int(part.postings.nnz), "truncated": truncated}

    def merge_parts(
        self, sources: Sequence[tuple[Path, BoolArray]], folder: Path, bulk: bool
    ) -> dict[str, Any]:
        from scipy.sparse import csr_matrix, hstack

        kept = [ImpactPart.load(path).postings[:, np.flatnonzero(keep)] for path, keep in sources]
        postings = hstack(kept).tocsr() if kept else csr_matrix((self.spec.vocabulary, 0), dtype=np.float32)
        return self.write(postings.T, folder, 0)

    def open(self, segments: Sequence[SegmentView], name: str) -> SpladeSearch:
        return SpladeSearch(
            self, segments, load_parts(segments, name, ImpactPart.load, "passages of weights")
        )


class SpladeWriter:
    """Encodes a segment's passages batch by batch and writes the postings at the end."""

    def __init__(self, kind: SpladeKind, folder: Path, job: BuildJob) -> None:
        self._kind = kind
        self._folder = folder
        self._job = job
        self._batches: list[Any] = []
        self._truncated = 0

    def add(self, texts: Sequence[str], documents: Sequence[Document]) -> None:
        encoder = self._kind.encoder
        self._batches.append(encoder.encode_documents(texts))
        self._truncated += encoder.count_truncated(texts)
        if self._job.progress is not None:
            self._job.progress(len(texts))

    def finish(self) -> dict[str, Any]:
        from scipy.sparse import csr_matrix, vstack

        empty = csr_matrix((0, self._kind.spec.vocabulary), dtype=np.float32)
        documents = vstack(self._batches).tocsr() if self._batches else empty
        self._batches = []
        return self._kind.write(documents, self._folder, self._truncated)


class SpladeSearch:
    """SPLADE search over one snapshot's segments: encode once, score each part, merge."""

    def __init__(
        self, kind: SpladeKind, segments: Sequence[SegmentView], parts: Sequence[ImpactPart]
    ) -> None:
        self.kind = kind
        self._segments = segments
        self.parts = parts

    def encode_queries(self, texts: Sequence[str]) -> Any:
        return self.kind.encoder.encode_queries(texts)

    def search(
        self, queries: Any, k: int, allowed: Sequence[BoolArray | None], where: Filter | None = None
    ) -> list[UnitScores]:
        del where  # the masks say it all
        if len(allowed) != len(self.parts):
            raise ValueError(f"{len(allowed)} masks for {len(self.parts)} segments")
        masks = [view.unit_mask(rows, "passage") for view, rows in zip(self._segments, allowed, strict=True)]
        found = [
            (view.first_passage, part.search(queries, k, mask))
            for view, part, mask in zip(self._segments, self.parts, masks, strict=True)
        ]
        return merge_segment_results(found, queries.shape[0], k)


class _Factory:
    def config(self, backend: str | None) -> SpladeChannel:
        """The default config for ``--channel splade`` (the model comes from ``--splade-model``)."""
        if backend is not None:
            raise ConfigError("splade has no backend to choose")
        return SpladeChannel()

    def from_config(self, config: SpladeChannel, sample: Callable[[], Sequence[str]] = tuple) -> SpladeKind:
        if not isinstance(config, SpladeChannel):
            raise ConfigError(f"a splade channel needs a SpladeChannel config, got {type(config).__name__}")
        encoder = config.model
        if not isinstance(encoder, SpladeEncoder):
            if not encoder:
                raise ConfigError(
                    "a splade channel needs a model: --splade-model DIR (a SPLADE model folder)"
                )
            encoder = SpladeEncoder(encoder, batch_size=config.batch_size, device=config.device)
        return SpladeKind(encoder.spec, config.max_terms, config.min_weight, encoder)

    def from_settings(self, settings: dict[str, Any], options: OpenOptions) -> SpladeKind:
        return SpladeKind(
            SpladeSpec.from_dict(settings["encoder"]),
            settings.get("max_terms"),
            float(settings.get("min_weight", 0.0)),
            None,
            options,
        )


FACTORY = _Factory()
