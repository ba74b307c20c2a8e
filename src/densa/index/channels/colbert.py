"""The ``colbert`` channel: late interaction over compressed token vectors, one part per segment.

Every passage is kept as its ColBERT token vectors, compressed as ColBERTv2 does (Santhanam et
al. 2022): each token is the id of its nearest centroid (k-means over the segment's tokens)
plus its residual to that centroid quantised to ``nbits`` per dimension, with bucket
boundaries and values taken from the residuals' own quantiles. At 128 dimensions and 2 bits
that is 34 bytes a token instead of 512 in float32.

A query is answered as PLAID does (Santhanam et al. 2022, "PLAID: An Efficient Engine for
Late Interaction Retrieval"), on NumPy arrays:

1. each query token probes its ``nprobe`` nearest centroids; the passages with a token in
   any of them are the candidates (an inverted list per centroid);
2. candidates are ranked by *centroid interaction*: for every query token the best centroid
   score among the passage's probed tokens, summed (no residual is read);
3. the best ``candidates`` of those are decompressed and scored by exact MaxSim.

A segment with no more live passages than ``candidates`` is scored exactly in full. Merges
keep the largest source's codes as they are and re-encode the others' decompressed tokens
with its codebook (no model is run), as ColBERTv2 does for documents added to an index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from densa.encode.colbert import ColbertEncoder, ColbertSpec, TokenVectors
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
)
from densa.index.shards import BatchShards
from densa.index.store import Filter
from densa.types import Document

__all__ = ["FACTORY", "ColbertChannel", "ColbertKind", "ResidualCodec", "TokenPart"]

_FORMAT = 1
_RECORD = "colbert.json"
_ARRAYS = ("centroids", "cutoffs", "weights", "codes", "residuals", "lengths", "ivf_offsets", "ivf_pids")
_KMEANS_ITERATIONS = 12
_POINTS_PER_CENTROID = 64  # k-means sample size per centroid (FAISS subsamples beyond it)
_MIN_POINTS_PER_CENTROID = 40  # fewer centroids than tokens / 40 train poorly
_SEED = 1234
_BLOCK = 1 << 16  # tokens compressed at a time


@dataclass(frozen=True)
class ColbertChannel:
    """A ``colbert`` channel: which late-interaction model, and how its tokens are kept.

    Parameters
    ----------
    model
        A ColBERT model folder (sentence-transformers, PyLate or Stanford format) or a loaded
        :class:`~densa.encode.colbert.ColbertEncoder`.
    nbits
        Bits per dimension of each token's residual: 1, 2, 4 or 8.
    nprobe
        Centroids each query token probes for candidates.
    candidates
        Candidates scored by exact MaxSim per segment (at least 4 k are).
    batch_size, device, document_length
        Encoding: texts per forward pass, ``cpu`` / ``cuda``, document token limit (default: the model's).
    """

    kind: ClassVar[str] = "colbert"

    model: str | ColbertEncoder = ""
    nbits: int = 2
    nprobe: int = 8
    candidates: int = 256
    batch_size: int = 32
    device: str | None = None
    document_length: int | None = None

    def __post_init__(self) -> None:
        check_search_settings(self.nbits, self.nprobe, self.candidates)


def check_search_settings(nbits: int, nprobe: int, candidates: int) -> None:
    if nbits not in (1, 2, 4, 8):
        raise ConfigError(f"colbert nbits must be 1, 2, 4 or 8, not {nbits}")
    if nprobe < 1 or candidates < 1:
        raise ConfigError("colbert nprobe and candidates must be positive")


# -- compression ------------------------------------------------------------------------------


def centroid_count(tokens: int) -> int:
    """Centroids for a segment of ``tokens`` token vectors: a power of two near 8 sqrt(tokens)
    (ColBERTv2 takes 16 sqrt), with at least 40 tokens per centroid."""
    if tokens <= 0:
        return 1
    by_sqrt = 2 ** math.floor(math.log2(max(8 * math.sqrt(tokens), 1)))
    return int(max(1, min(by_sqrt, tokens // _MIN_POINTS_PER_CENTROID)))


@dataclass(frozen=True)
class ResidualCodec:
    """Centroids plus ``nbits`` bucketed residuals per dimension (ColBERTv2's codec)."""

    centroids: npt.NDArray[np.float32]
    cutoffs: npt.NDArray[np.float32]
    weights: npt.NDArray[np.float32]
    nbits: int
    _table: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        per_byte = 8 // self.nbits
        mask = (1 << self.nbits) - 1
        values = np.arange(256)[:, None] >> (self.nbits * np.arange(per_byte))[None, :]
        object.__setattr__(self, "_table", self.weights[values & mask].astype(np.float32))

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @classmethod
    def train(cls, vectors: npt.NDArray[np.floating[Any]], nbits: int) -> ResidualCodec:
        """k-means (spherical, seeded) over a sample of ``vectors`` and the quantiles of the
        sample's residuals."""
        import faiss

        count, dim = vectors.shape
        if dim % (8 // nbits):
            raise ConfigError(
                f"colbert nbits={nbits} needs a token dimension divisible by {8 // nbits}, not {dim}"
            )
        k = centroid_count(count)
        rng = np.random.default_rng(_SEED)
        chosen = np.sort(rng.choice(count, min(count, k * _POINTS_PER_CENTROID), replace=False))
        sample = np.ascontiguousarray(vectors[chosen], np.float32)
        if k == 1 or count == 0:
            centroids = (
                _normalize(sample.mean(axis=0, keepdims=True)) if count else np.zeros((1, dim), np.float32)
            )
        else:
            kmeans = faiss.Kmeans(
                dim,
                k,
                niter=_KMEANS_ITERATIONS,
                seed=_SEED,
                spherical=True,
                max_points_per_centroid=_POINTS_PER_CENTROID,
                verbose=False,
            )
            kmeans.train(sample)
            centroids = np.asarray(kmeans.centroids, np.float32)
        centroids = centroids.astype(np.float16).astype(np.float32)  # as stored
        residuals = (sample - centroids[_nearest(sample, centroids)]).ravel() if count else np.zeros(1)
        buckets = 1 << nbits
        cutoffs = np.quantile(residuals, np.arange(1, buckets) / buckets).astype(np.float32)
        weights = np.quantile(residuals, (np.arange(buckets) + 0.5) / buckets).astype(np.float32)
        return cls(centroids, cutoffs, weights, nbits)

    def compress(
        self, vectors: npt.NDArray[np.floating[Any]]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
        """Centroid ids and packed residual buckets of ``vectors`` (in blocks: bounded memory)."""
        count, dim = vectors.shape
        per_byte = 8 // self.nbits
        codes = np.zeros(count, np.int32)
        packed = np.zeros((count, dim // per_byte), np.uint8)
        shifts = (self.nbits * np.arange(per_byte)).astype(np.uint8)
        for start in range(0, count, _BLOCK):
            block = np.asarray(vectors[start : start + _BLOCK], np.float32)
            nearest = _nearest(block, self.centroids)
            buckets = np.searchsorted(self.cutoffs, block - self.centroids[nearest]).astype(np.uint8)
            grouped = buckets.reshape(len(block), dim // per_byte, per_byte)
            codes[start : start + _BLOCK] = nearest
            packed[start : start + _BLOCK] = np.bitwise_or.reduce(grouped << shifts, axis=2)
        return codes, packed

    def decompress(
        self, codes: npt.NDArray[np.integer[Any]], packed: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.float32]:
        """Token vectors back from their codes: centroid + bucket values, L2-normalised."""
        residuals = self._table[packed].reshape(len(codes), self.dim)
        return _normalize(self.centroids[codes] + residuals)


def _normalize(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), np.float32)


def _nearest(vectors: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """The highest-scoring centroid of every vector, in blocks (bounded memory)."""
    out = np.empty(len(vectors), np.int64)
    block = max(1, (1 << 24) // max(len(centroids), 1))
    for start in range(0, len(vectors), block):
        out[start : start + block] = np.argmax(vectors[start : start + block] @ centroids.T, axis=1)
    return out


def _ranges(starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``concat(arange(s, s + n) for s, n in zip(starts, lengths))`` without a Python loop."""
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return shift + np.arange(total, dtype=np.int64)


# -- one segment's part ----------------------------------------------------------------------


class TokenPart:
    """One segment's compressed token vectors, inverted lists and search."""

    def __init__(self, arrays: dict[str, np.ndarray], nbits: int) -> None:
        self.arrays = arrays
        self.codec = ResidualCodec(
            np.asarray(arrays["centroids"], np.float32),
            np.asarray(arrays["cutoffs"], np.float32),
            np.asarray(arrays["weights"], np.float32),
            nbits,
        )
        self.codes = arrays["codes"]
        self.residuals = arrays["residuals"]
        self.lengths = np.asarray(arrays["lengths"], np.int64)
        self.token_offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.ivf_offsets = np.asarray(arrays["ivf_offsets"], np.int64)
        self.ivf_pids = arrays["ivf_pids"]

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def build(cls, tokens: TokenVectors, nbits: int) -> TokenPart:
        """Compress ``tokens`` with a codebook trained on them."""
        codec = ResidualCodec.train(tokens.vectors, nbits)
        codes, packed = codec.compress(tokens.vectors)
        return cls.assemble(codec, codes, packed, tokens.lengths)

    @classmethod
    def assemble(
        cls,
        codec: ResidualCodec,
        codes: npt.NDArray[np.int32],
        packed: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.int64],
    ) -> TokenPart:
        """A part from its codes, inverted lists included (passages per centroid, once each)."""
        pids = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        pairs = np.unique(codes.astype(np.int64) * max(len(lengths), 1) + pids)
        centroid_of = pairs // max(len(lengths), 1)
        counts = np.bincount(centroid_of, minlength=len(codec.centroids))
        arrays: dict[str, np.ndarray] = {
            "centroids": codec.centroids.astype(np.float16),
            "cutoffs": codec.cutoffs,
            "weights": codec.weights,
            "codes": codes.astype(np.uint16 if len(codec.centroids) <= 1 << 16 else np.int32),
            "residuals": packed,
            "lengths": lengths.astype(np.int32),
            "ivf_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "ivf_pids": (pairs % max(len(lengths), 1)).astype(np.int32),
        }
        return cls(arrays, codec.nbits)

    def save(self, folder: Path) -> int:
        record = {
            "format": _FORMAT,
            "nbits": self.codec.nbits,
            "dim": self.codec.dim,
            "passages": len(self),
            "tokens": int(self.lengths.sum()),
            "centroids": len(self.codec.centroids),
        }
        return save_part_files(folder, {name: self.arrays[name] for name in _ARRAYS}, _RECORD, record)

    @classmethod
    def load(cls, folder: Path) -> TokenPart:
        record, arrays = load_part_files(folder, _ARRAYS, _RECORD, "colbert part")
        if record.get("format") != _FORMAT:
            raise IndexDamagedError(
                f"{folder / _RECORD}: unknown colbert part format {record.get('format')!r}"
            )
        arrays["centroids"] = np.asarray(arrays["centroids"], np.float32)
        part = cls(arrays, int(record["nbits"]))
        if len(part.codes) != part.token_offsets[-1] or len(part.residuals) != len(part.codes):
            raise IndexDamagedError(
                f"{folder}: {len(part.codes)} token codes for {part.token_offsets[-1]} tokens"
            )
        return part

    def tokens_of(self, passages: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The decompressed tokens of ``passages``, concatenated in order."""
        rows = _ranges(self.token_offsets[passages], self.lengths[passages])
        return self.codec.decompress(np.asarray(self.codes[rows], np.int64), np.asarray(self.residuals[rows]))

    def exact(
        self, query: npt.NDArray[np.float32], passages: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """MaxSim of ``query`` with each of ``passages`` (all with at least one token)."""
        if not len(passages):
            return np.zeros(0, np.float32)
        similarities = query @ self.tokens_of(passages).T
        starts = np.concatenate([[0], np.cumsum(self.lengths[passages])[:-1]])
        return np.asarray(np.maximum.reduceat(similarities, starts, axis=1).sum(axis=0), np.float32)

    def search(
        self, queries: TokenVectors, allowed: BoolArray | None, nprobe: int, keep: int
    ) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
        """Every query's candidates (local ids) and their exact MaxSim scores."""
        out = []
        offsets = queries.offsets
        for q in range(len(queries)):
            query = np.ascontiguousarray(queries.vectors[offsets[q] : offsets[q + 1]], np.float32)
            chosen = self.candidates(query, allowed, nprobe, keep)
            out.append((chosen, self.exact(query, chosen)))
        return out

    def candidates(
        self, query: npt.NDArray[np.float32], allowed: BoolArray | None, nprobe: int, keep: int
    ) -> npt.NDArray[np.int64]:
        """The ``keep`` best passages by centroid interaction among those the query's tokens
        probe (every allowed passage when there are no more than ``keep``)."""
        live = self.lengths > 0
        if allowed is not None:
            live &= allowed
        if int(live.sum()) <= keep:
            return np.flatnonzero(live).astype(np.int64)
        scores = query @ self.codec.centroids.T  # (query tokens, centroids)
        probes = min(nprobe, scores.shape[1])
        probed = np.argpartition(-scores, probes - 1, axis=1)[:, :probes]
        qs = np.repeat(np.arange(len(query)), probes)
        cs = probed.ravel()
        starts, sizes = self.ivf_offsets[cs], self.ivf_offsets[cs + 1] - self.ivf_offsets[cs]
        pids = np.asarray(self.ivf_pids[_ranges(starts, sizes)], np.int64)
        qidx = np.repeat(qs, sizes)
        found = np.repeat(scores[qs, cs], sizes)
        chosen = live[pids]
        pids, qidx, found = pids[chosen], qidx[chosen], found[chosen]
        if not len(pids):
            return np.zeros(0, np.int64)
        # best probed-centroid score per (passage, query token), summed over query tokens
        key = pids * len(query) + qidx
        order = np.lexsort((-found, key))
        key, found = key[order], found[order]
        first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        per_pair, pair_pid = found[first], key[first] // len(query)
        starts_pid = np.flatnonzero(np.concatenate([[True], pair_pid[1:] != pair_pid[:-1]]))
        approx = np.add.reduceat(per_pair, starts_pid)
        unique = pair_pid[starts_pid]
        if len(unique) > keep:
            best = np.argpartition(-approx, keep - 1)[:keep]
            unique = unique[best]
        return unique.astype(np.int64)


# -- the kind ----------------------------------------------------------------------------------


class ColbertKind:
    """A resolved ``colbert`` channel: the model's spec, the compression and search settings."""

    unit: Unit = "passage"

    def __init__(
        self,
        spec: ColbertSpec,
        nbits: int,
        nprobe: int,
        candidates: int,
        encoder: ColbertEncoder | None = None,
        options: OpenOptions | None = None,
    ) -> None:
        check_search_settings(nbits, nprobe, candidates)
        self.spec = spec
        self.nbits = nbits
        self.nprobe = nprobe
        self.candidates = candidates
        self._encoder = encoder
        self._options = options or OpenOptions()
        self.notes: list[str] = []

    def settings(self) -> dict[str, Any]:
        return {
            "encoder": self.spec.to_dict(),
            "nbits": self.nbits,
            "nprobe": self.nprobe,
            "candidates": self.candidates,
        }

    @property
    def encoder(self) -> ColbertEncoder:
        """The model, loaded on first use (from the folder the index names)."""
        if self._encoder is None:
            options = self._options
            encoder = ColbertEncoder(
                self.spec.model,
                batch_size=options.batch_size,
                device=options.device,
                document_length=self.spec.document_length,
            )
            check_fingerprint("colbert", self.spec.model, self.spec.fingerprint, encoder.spec.fingerprint)
            self._encoder = encoder
        return self._encoder

    @property
    def tokenizer(self) -> Any:
        return self.encoder.tokenizer

    def part_writer(self, folder: Path, job: BuildJob) -> ColbertWriter:
        return ColbertWriter(self, folder, job)

    def write_tokens(self, tokens: TokenVectors, folder: Path, truncated: int) -> dict[str, Any]:
        return self._stats(TokenPart.build(tokens, self.nbits), folder, truncated)

    def _stats(self, part: TokenPart, folder: Path, truncated: int) -> dict[str, Any]:
        """Save ``part`` into ``folder``; its statistics for the manifest."""
        return {
            "bytes": part.save(folder),
            "tokens": int(part.lengths.sum()),
            "centroids": len(part.codec.centroids),
            "truncated": truncated,
        }

    def merge_parts(
        self, sources: Sequence[tuple[Path, BoolArray]], folder: Path, bulk: bool
    ) -> dict[str, Any]:
        parts = [(TokenPart.load(path), np.flatnonzero(keep)) for path, keep in sources]
        if not parts:
            return self.write_tokens(TokenVectors.concat([], self.spec.dim), folder, 0)
        base = max(range(len(parts)), key=lambda i: int(parts[i][0].lengths[parts[i][1]].sum()))
        codec = parts[base][0].codec
        codes, packed, lengths = [], [], []
        for i, (part, kept) in enumerate(parts):
            rows = _ranges(part.token_offsets[kept], part.lengths[kept])
            if i == base:  # kept as they are: no second quantisation
                codes.append(np.asarray(part.codes[rows], np.int32))
                packed.append(np.asarray(part.residuals[rows]))
            else:
                c, p = codec.compress(part.tokens_of(kept))
                codes.append(c)
                packed.append(p)
            lengths.append(part.lengths[kept])
        merged = TokenPart.assemble(
            codec, np.concatenate(codes), np.concatenate(packed), np.concatenate(lengths)
        )
        return self._stats(merged, folder, 0)

    def open(self, segments: Sequence[SegmentView], name: str) -> ColbertSearch:
        return ColbertSearch(self, segments, load_parts(segments, name, TokenPart.load, "passages of tokens"))


class ColbertWriter:
    """Encodes a segment's passages batch by batch (resumable shards of float16 tokens) and
    compresses them at the end, with a codebook trained on the whole segment."""

    def __init__(self, kind: ColbertKind, folder: Path, job: BuildJob) -> None:
        self._kind = kind
        self._folder = folder
        self._job = job
        self._shards = BatchShards(job.resume_dir, job.signature)
        self._batches: list[TokenVectors] = []
        self._truncated = 0

    def add(self, texts: Sequence[str], documents: Sequence[Document]) -> None:
        number, digest, found = self._shards.next(texts)
        if found is not None:
            tokens, truncated = _from_shard(found[0], len(texts)), found[1]
        else:
            encoder = self._kind.encoder
            tokens = encoder.encode_documents(texts)
            truncated = encoder.count_truncated(texts)
            self._shards.save(number, digest, _to_shard(tokens), truncated)
        self._batches.append(TokenVectors(tokens.vectors.astype(np.float16), tokens.lengths))
        self._truncated += truncated
        if self._job.progress is not None:
            self._job.progress(len(texts))

    def finish(self) -> dict[str, Any]:
        tokens = TokenVectors.concat(self._batches, self._kind.spec.dim)
        self._batches = []
        return self._kind.write_tokens(tokens, self._folder, self._truncated)


def _to_shard(tokens: TokenVectors) -> npt.NDArray[np.float32]:
    """A batch's tokens as one matrix: the vectors and, in the last column, each token's text
    number in the batch (texts without tokens are restored from the batch size)."""
    owner = np.repeat(np.arange(len(tokens), dtype=np.float32), tokens.lengths)
    return np.concatenate([tokens.vectors, owner[:, None]], axis=1).astype(np.float32)


def _from_shard(matrix: npt.NDArray[np.float32], texts: int) -> TokenVectors:
    owners = matrix[:, -1].astype(np.int64)
    return TokenVectors(
        np.ascontiguousarray(matrix[:, :-1], np.float32), np.bincount(owners, minlength=texts)
    )


class ColbertSearch:
    """ColBERT search over one snapshot's segments: encode once, PLAID per part, merge."""

    def __init__(
        self, kind: ColbertKind, segments: Sequence[SegmentView], parts: Sequence[TokenPart]
    ) -> None:
        self.kind = kind
        self._segments = segments
        self.parts = parts

    def encode_queries(self, texts: Sequence[str]) -> TokenVectors:
        return self.kind.encoder.encode_queries(texts)

    def search(
        self, queries: TokenVectors, k: int, allowed: Sequence[BoolArray | None], where: Filter | None = None
    ) -> list[UnitScores]:
        del where  # the masks say it all
        if len(allowed) != len(self.parts):
            raise ValueError(f"{len(allowed)} masks for {len(self.parts)} segments")
        masks = [view.unit_mask(rows, "passage") for view, rows in zip(self._segments, allowed, strict=True)]
        keep = max(self.kind.candidates, 4 * k)
        found = [
            (view.first_passage, part.search(queries, mask, self.kind.nprobe, keep))
            for view, part, mask in zip(self._segments, self.parts, masks, strict=True)
        ]
        return merge_segment_results(found, len(queries), k)


class _Factory:
    def config(self, backend: str | None) -> ColbertChannel:
        """The default config for ``--channel colbert`` (the model comes from ``--colbert-model``)."""
        if backend is not None:
            raise ConfigError("colbert has no backend to choose (set --colbert-nbits instead)")
        return ColbertChannel()

    def from_config(self, config: ColbertChannel, sample: Callable[[], Sequence[str]] = tuple) -> ColbertKind:
        if not isinstance(config, ColbertChannel):
            raise ConfigError(f"a colbert channel needs a ColbertChannel config, got {type(config).__name__}")
        encoder = config.model
        if not isinstance(encoder, ColbertEncoder):
            if not encoder:
                raise ConfigError(
                    "a colbert channel needs a model: --colbert-model DIR (a ColBERT model folder)"
                )
            encoder = ColbertEncoder(
                encoder,
                batch_size=config.batch_size,
                device=config.device,
                document_length=config.document_length,
            )
        return ColbertKind(encoder.spec, config.nbits, config.nprobe, config.candidates, encoder)

    def from_settings(self, settings: dict[str, Any], options: OpenOptions) -> ColbertKind:
        spec = ColbertSpec.from_dict(settings["encoder"])
        return ColbertKind(
            spec, int(settings["nbits"]), int(settings["nprobe"]), int(settings["candidates"]), None, options
        )


FACTORY = _Factory()
