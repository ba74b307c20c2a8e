"""The ``dense`` channel: a bi-encoder's passage vectors in a FAISS index, one per segment.

Queries are encoded once and searched in every segment's :class:`~densa.index.VectorIndex`;
the best passages of all segments are merged by score. The part of a segment is built in
one go when the segment is written (every kind, HNSW and IVF included, sees all its
vectors), from batches encoded here or on Dask workers and kept as resumable shards.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, cast, get_args

import numpy as np

from densa.encode.config import CALIBRATION_TEXTS, Backend, EncoderConfig, EncoderSpec
from densa.encode.encoder import Encoder, backend_agreement, make_encoder
from densa.encode.model_files import fingerprint, resolve_model_path
from densa.encode.onnx import OnnxEncoder, Runtime, cached_fp32_graph
from densa.errors import ConfigError, DensaError, IndexMismatchError
from densa.index.channels.base import (
    BoolArray,
    BuildJob,
    OpenOptions,
    SegmentView,
    Unit,
    UnitScores,
    load_parts,
    top_k_with_ties,
)
from densa.index.encoding import BatchRunner, Done, LocalRunner, Pending
from densa.index.engines.base import EXTERNAL, EngineLocation, EnginePart, write_engine_part
from densa.index.shards import BatchShards
from densa.index.store import Filter
from densa.index.vectors import VectorIndex, VectorIndexConfig
from densa.types import Document

__all__ = ["FACTORY", "DenseChannel", "DenseKind", "check_same_encoder", "query_backend"]

#: Spec fields that change the vectors: an encoder differing in any of them does not match.
_SPEC_FIELDS_THAT_CHANGE_VECTORS = (
    "fingerprint",
    "query_fingerprint",
    "pooling",
    "normalize",
    "dim",
    "max_length",
    "query_prefix",
    "passage_prefix",
)
_TIE_MARGIN = 16  # extra rows fetched per segment so that ties at the cut can be kept
_LOG = logging.getLogger("densa.index")


@dataclass(frozen=True)
class DenseChannel:
    """A ``dense`` channel: which bi-encoder, and which FAISS kind holds its vectors.

    Parameters
    ----------
    encoder
        An :class:`Encoder`, or the configuration of one (default: the bundled MiniLM).
    vectors
        The FAISS kind and its parameters (default: exact inner product).
    """

    kind: ClassVar[str] = "dense"

    encoder: Encoder | EncoderConfig = field(default_factory=EncoderConfig)
    vectors: VectorIndexConfig = field(default_factory=VectorIndexConfig)


def query_backend(spec: EncoderSpec, asked: Backend | Literal["auto"] | None) -> Backend:
    """The backend queries are encoded on.

    ``None`` keeps the index's own. ``auto``, on an index built with fp32 torch, takes OpenVINO
    when it is installed: of the backends within 0.005 nDCG@10 of fp32 on SciFact
    (``bench/results/encode_backends.md``), the fastest (bf16 where the CPU has it, fp32
    elsewhere); separate query towers and other backends keep the index's own.
    """
    if asked is None or (asked == "auto" and (spec.backend != "torch" or spec.query_model is not None)):
        return spec.backend
    if asked == "auto":
        return "openvino" if importlib.util.find_spec("openvino") is not None else "torch"
    return asked


def check_same_encoder(where: str, built: EncoderSpec, given: EncoderSpec) -> None:
    """Raise :class:`IndexMismatchError` if ``given`` would make other vectors than ``built``."""
    differences = [
        f"{name}: index has {getattr(built, name)!r}, encoder has {getattr(given, name)!r}"
        for name in _SPEC_FIELDS_THAT_CHANGE_VECTORS
        if getattr(built, name) != getattr(given, name)
    ]
    if differences:
        raise IndexMismatchError(
            f"{where} was built with another encoder ({built.model!r}): " + "; ".join(differences)
        )


class DenseKind:
    """A resolved ``dense`` channel: the encoder's spec, the FAISS settings, the encoder itself."""

    unit: Unit = "passage"

    def __init__(
        self,
        spec: EncoderSpec,
        vectors: VectorIndexConfig,
        encoder: Encoder | None = None,
        options: OpenOptions | None = None,
        config: EncoderConfig | None = None,
    ) -> None:
        vectors.check(spec.dim)
        self.spec = spec
        self.config = config or spec.to_config()
        self.vectors = vectors
        self._encoder = encoder
        self._options = options or OpenOptions()
        # an encoder given explicitly encodes queries too, unless another backend is asked for
        asked = self._options.backend
        self._queries: Encoder | None = encoder if asked in (None, "auto") else None
        self._twin: DenseKind | None = None
        self.notes: list[str] = []

    def share_models(self, twin: DenseKind) -> bool:
        """Use ``twin``'s encoders (loaded once for both) when it encodes exactly as this one
        does: another channel of the same model, e.g. in another FAISS kind or an engine.
        Returns whether it does."""
        if twin.spec == self.spec and twin._options == self._options and twin is not self:
            self._twin = twin
        return self._twin is twin

    def settings(self) -> dict[str, Any]:
        return {"encoder": self.spec.to_dict(), "vectors": self.vectors.to_dict()}

    @property
    def encoder(self) -> Encoder:
        """The encoder of documents, loaded on first use: on the backend the index was built
        with; for fp32 torch on the CPU, the model's exported fp32 graph on ONNX Runtime when
        it is cached (see :meth:`_fp32_graph`)."""
        if self._encoder is None:
            if self._twin is not None:
                self._encoder = self._twin.encoder
            else:
                self._encoder = self._fp32_graph() or self._load(self.spec.backend)
        return self._encoder

    def _fp32_graph(self) -> Encoder | None:
        """The fp32 torch model as its cached exported graph on ONNX Runtime, or ``None``.

        The graph is the one optimised for ONNX Runtime or, when only another backend was
        exported (``auto`` queries export OpenVINO's), the plain fp32 export it started from.
        The same fp32 arithmetic: its passage vectors differ from torch's by float rounding
        only (at most 2.4e-7 per component on SciFact passages, 1.6e-7 with the plain export;
        torch's own differ by 1.1e-7 between batch sizes), so documents added to a torch-built
        index need neither torch nor sentence-transformers loaded (seconds of CPU for a
        one-document ``densa add``).
        """
        options = self._options
        if (
            self.spec.backend != "torch"
            or options.device not in (None, "cpu")
            or importlib.util.find_spec("onnxruntime") is None
        ):
            return None
        encoder = self._from_cache("onnx", any_fp32=True)
        if encoder is not None:
            check_same_encoder("this index", self.spec, encoder.spec)
        return encoder

    @property
    def query_encoder(self) -> Encoder:
        """The encoder of queries: on the backend the index was opened with (``auto``: the
        fastest one measured within 0.005 nDCG@10 of fp32, see :func:`query_backend`); the
        document encoder when that is the same backend."""
        if self._queries is None:
            backend = query_backend(self.spec, self._options.backend)
            if self._twin is not None:
                self._queries = self._twin.query_encoder
            else:
                self._queries = self.encoder if backend == self.spec.backend else self._load(backend)
        return self._queries

    def _load(self, backend: Backend) -> Encoder:
        try:
            return self._load_on(backend)
        except DensaError as exc:
            if self._options.backend != "auto" or backend == self.spec.backend:
                raise
            _LOG.warning(
                "queries on %s are not possible here (%s); using %s", backend, exc, self.spec.backend
            )
            return self.encoder

    def _from_cache(self, runtime: Runtime, any_fp32: bool = False) -> OnnxEncoder | None:
        """The model on ``runtime`` from a graph exported already (no torch), or ``None``;
        ``any_fp32``: any fp32 graph ONNX Runtime runs, the plain export too
        (:func:`~densa.encode.onnx.cached_fp32_graph`)."""
        model_dir = resolve_model_path(self._options.model or self.spec.model)
        if fingerprint(model_dir) != self.spec.fingerprint:
            return None
        graph = cached_fp32_graph(model_dir, self.spec.fingerprint) if any_fp32 else None
        spec = replace(self.spec, backend=runtime)
        return OnnxEncoder.from_cache(spec, model_dir, runtime, self._options.batch_size, graph=graph)

    def _load_on(self, backend: Backend) -> Encoder:
        """The model on ``backend``: an exported graph already cached opens without torch."""
        options = self._options
        spec = replace(self.spec, backend=backend)
        encoder: Encoder | None = None
        if backend in get_args(Runtime):
            encoder = self._from_cache(cast(Runtime, backend))
        if encoder is None:
            config = replace(
                spec.to_config(batch_size=options.batch_size, device=options.device), backend=backend
            )
            if options.model is not None:
                config = replace(config, model=options.model)
            encoder = make_encoder(config, calibration=options.calibration)
        check_same_encoder("this index", self.spec, encoder.spec)
        return encoder

    @property
    def queries_on_own_backend(self) -> bool:
        """Whether queries are encoded on the backend the documents were (one encoder for both)."""
        return query_backend(self.spec, self._options.backend) == self.spec.backend

    @property
    def tokenizer(self) -> Any:
        return self.query_encoder.tokenizer

    def use_encoder(self, encoder: Encoder | None = None, *, queries: Encoder | None = None) -> None:
        """Encode documents with ``encoder`` and queries with ``queries`` from now on (e.g. the
        loaded ones wrapped in a lock; ``queries`` defaults to ``encoder``); the same model."""
        for given in (encoder, queries):
            if given is not None:
                check_same_encoder("this index", self.spec, given.spec)
        if encoder is not None:
            self._encoder = encoder
        if queries is not None or encoder is not None:
            self._queries = queries or encoder

    def runner(self, address: str) -> AbstractContextManager[BatchRunner]:
        """Encode on the Dask cluster at ``address`` (``local:N``: N local workers); every
        worker loads this channel's encoder from its config."""
        from densa.index.distributed import dask_runner

        return dask_runner(address, self.config, self.spec.fingerprint)

    def part_writer(self, folder: Path, job: BuildJob) -> DenseWriter:
        return DenseWriter(self, folder, job)

    @staticmethod
    def load_part(folder: Path) -> VectorIndex | EnginePart:
        """One segment's part: FAISS files, or a collection of an engine (``external.json``)."""
        return EnginePart.load(folder) if (folder / EXTERNAL).is_file() else VectorIndex.load(folder)

    def with_vectors(self, vectors: VectorIndexConfig) -> DenseKind:
        """The same encoder (loaded models shared) with its vectors kept in another kind or engine."""
        other = DenseKind(self.spec, vectors, None, self._options, self.config)
        other.share_models(self)
        return other

    def open(self, segments: Sequence[SegmentView], name: str) -> DenseSearch:
        return DenseSearch(self, segments, load_parts(segments, name, self.load_part, "vectors"))

    def merge_parts(
        self, sources: Sequence[tuple[Path, BoolArray]], folder: Path, bulk: bool
    ) -> dict[str, Any]:
        kept = [self.load_part(path).reconstruct(np.flatnonzero(keep)) for path, keep in sources]
        vectors = np.concatenate(kept) if kept else np.zeros((0, self.spec.dim), np.float32)
        return self.write_vectors(vectors, folder, bulk=bulk, truncated=0)

    def write_vectors(
        self, vectors: np.ndarray, folder: Path, *, bulk: bool, truncated: int
    ) -> dict[str, Any]:
        """Build and save a part from a segment's passage vectors (row i = local passage i)."""
        config = self.vectors
        if not bulk and len(vectors) < config.exact_below:
            config = replace(config, kind="flat")
        if config.engine is not None:
            written = write_engine_part(EngineLocation.parse(config.engine), vectors, folder, config)
            return {"bytes": written, "vector_codes": 0, "kind": config.kind, "truncated": truncated}
        index = VectorIndex.build(vectors, config)
        written = index.save(folder)
        return {
            "bytes": written,
            "vector_codes": index.memory_bytes(),
            "kind": config.kind,
            "truncated": truncated,
        }


class DenseWriter:
    """Encodes a segment's passages batch by batch (resumable, here or on Dask workers) and
    builds the segment's vector index at the end."""

    def __init__(self, kind: DenseKind, folder: Path, job: BuildJob) -> None:
        self._kind = kind
        self._folder = folder
        self._job = job
        self._shards = BatchShards(job.resume_dir, job.signature)
        self._runner: BatchRunner = job.runner or LocalRunner(kind.encoder, job.progress)
        self._pending: deque[tuple[int, str, int, Pending, bool]] = deque()
        self._vectors: list[np.ndarray] = []
        self._truncated = 0

    def add(self, texts: Sequence[str], documents: Sequence[Document]) -> None:
        number, digest, found = self._shards.next(texts)
        if found is not None:
            self._pending.append((number, digest, len(texts), Done(found), True))
        else:
            job = self._runner.submit(list(texts), [d.full_text for d in documents])
            self._pending.append((number, digest, len(texts), job, False))
        while len(self._pending) >= self._runner.window:
            self._collect()

    def _collect(self) -> None:
        number, digest, count, job, cached = self._pending.popleft()
        matrix, truncated = job.result()
        if not cached:
            self._shards.save(number, digest, matrix, truncated)
        if (cached or self._job.runner is not None) and self._job.progress is not None:
            self._job.progress(count)
        self._vectors.append(matrix)
        self._truncated += truncated

    def finish(self) -> dict[str, Any]:
        while self._pending:
            self._collect()
        dim = self._kind.spec.dim
        vectors = np.concatenate(self._vectors) if self._vectors else np.zeros((0, dim), np.float32)
        return self._kind.write_vectors(vectors, self._folder, bulk=self._job.bulk, truncated=self._truncated)


class DenseSearch:
    """Dense search over one snapshot's segments: encode once, search each part, merge."""

    def __init__(
        self, kind: DenseKind, segments: Sequence[SegmentView], parts: Sequence[VectorIndex | EnginePart]
    ) -> None:
        self.kind = kind
        self._segments = segments
        self.parts = parts

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.kind.query_encoder.encode_queries(list(texts))

    def search(
        self, queries: np.ndarray, k: int, allowed: Sequence[BoolArray | None], where: Filter | None = None
    ) -> list[UnitScores]:
        if len(allowed) != len(self.parts):
            raise ValueError(f"{len(allowed)} masks for {len(self.parts)} segments")
        masks = [view.unit_mask(rows, "passage") for view, rows in zip(self._segments, allowed, strict=True)]
        want = k + _TIE_MARGIN

        def part_search(view: SegmentView, part: VectorIndex | EnginePart, mask: BoolArray | None) -> Any:
            if isinstance(part, EnginePart) and where:  # the engine may apply the filter itself
                return part.search(queries, want, mask, where, view.unit_mask(view.live, "passage"))
            return part.search(queries, want, mask)

        while True:
            found = [
                (view.first_passage, part_search(view, part, mask))
                for view, part, mask in zip(self._segments, self.parts, masks, strict=True)
            ]
            results = []
            short = False  # a segment's last fetched row ties with the cut: fetch deeper
            for q in range(len(queries)):
                ids = [rows[q][rows[q] >= 0] + first for first, (_, rows) in found]
                scores = [s[q][rows[q] >= 0] for _, (s, rows) in found]
                top = (
                    top_k_with_ties(np.concatenate(ids), np.concatenate(scores), k)
                    if ids
                    else UnitScores.empty()
                )
                cut = top.scores[-1] if len(top) else np.inf
                short |= any(len(s) == want and s[-1] >= cut for s in scores)
                results.append(top)
            if not short or want >= max((len(p) for p in self.parts), default=0):
                return results
            want *= 4


class _Factory:
    def from_config(self, config: DenseChannel, sample: Callable[[], Sequence[str]] = tuple) -> DenseKind:
        """Load the encoder (calibrating ``openvino-int8`` on ``sample()``, the corpus's first
        passages, if it was never calibrated) and check it against fp32 on another backend."""
        if not isinstance(config, DenseChannel):
            raise ConfigError(f"a dense channel needs a DenseChannel config, got {type(config).__name__}")
        given = config.encoder
        if not isinstance(given, EncoderConfig):
            return DenseKind(given.spec, config.vectors, given)
        encoder = make_encoder(given, calibration=lambda: list(sample()[:CALIBRATION_TEXTS]))
        kind = DenseKind(encoder.spec, config.vectors, encoder, config=given)
        check = list(sample()[:64]) if given.backend != "torch" else []
        if check:
            agreement = backend_agreement(encoder, given, check)
            kind.notes.append(
                f"backend {given.backend}: mean cosine with fp32 torch on {len(check)} passages "
                f"= {agreement:.5f}"
            )
        return kind

    def from_settings(self, settings: dict[str, Any], options: OpenOptions) -> DenseKind:
        spec = EncoderSpec.from_dict(settings["encoder"])
        encoder = options.encoder
        if encoder is not None:
            check_same_encoder("this index", spec, encoder.spec)
        if options.model is not None:
            got = fingerprint(resolve_model_path(options.model))
            if got != spec.fingerprint:
                raise IndexMismatchError(
                    f"this index was built with model {spec.model!r} (fingerprint {spec.fingerprint}); "
                    f"{options.model!r} is a different model (fingerprint {got}). Rebuild the index with it."
                )
        return DenseKind(spec, VectorIndexConfig.from_dict(settings["vectors"]), encoder, options)


FACTORY = _Factory()
