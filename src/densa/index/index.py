"""The index folder: document store + vectors + BM25 + manifest, built, changed and opened as one.

Examples
--------
Build from any iterable of documents, then search by meaning::

    index = Index.build(read_corpus("corpus.jsonl"), "my-index")
    index = Index.open("my-index")
    hits = index.search(["heart attack"], k=10)[0]
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from densa.chunk.chunker import ChunkConfig
from densa.encode.config import CALIBRATION_TEXTS, Backend, EncoderConfig, EncoderSpec
from densa.encode.encoder import Encoder, make_encoder
from densa.encode.model_files import fingerprint, resolve_model_path
from densa.errors import DensaError, IndexMismatchError, InputError
from densa.index.bm25 import BM25Config, BM25Index
from densa.index.generation import (
    BM25_DIR,
    DOCS_FILE,
    LOCK_FILE,
    VECTORS_FILE,
    BatchRunner,
    BuildStats,
    GenerationWriter,
    dir_bytes,
    encode_into,
    write_lock,
)
from densa.index.manifest import MANIFEST, Manifest
from densa.index.shards import BUILD_DIR, ShardCache
from densa.index.store import DocumentStore, Filter
from densa.index.vectors import VectorIndex, VectorIndexConfig
from densa.types import Document, Hit

if TYPE_CHECKING:
    from densa.rerank.reranker import Reranker
    from densa.search.searcher import Mode, SearchConfig

__all__ = ["DenseScores", "Index"]

#: per query: ``{row id: (score, best passage id)}``
DenseScores = list[dict[int, tuple[float, int]]]

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


def _make_encoder(encoder: Encoder | EncoderConfig | None) -> Encoder:
    if encoder is None or isinstance(encoder, EncoderConfig):
        return make_encoder(encoder)
    return encoder


class Index:
    """A densa index folder opened for search and updates.

    Use :meth:`build` to create one and :meth:`open` to load one; the constructor is internal.
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        encoder: Encoder | None,
        encoder_options: dict[str, Any],
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._encoder = encoder
        self._encoder_options = encoder_options
        gen_dir = path / manifest.generation
        self.store = DocumentStore(gen_dir / DOCS_FILE, read_only=True)
        self.vectors = VectorIndex.load(gen_dir / VECTORS_FILE, manifest.vectors)
        self.bm25 = BM25Index.load(gen_dir / BM25_DIR)
        self.build_stats: BuildStats | None = None
        if len(self.bm25) != manifest.documents:
            raise DensaError(
                f"{path}: BM25 holds {len(self.bm25)} documents, the manifest {manifest.documents}"
            )

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        path: str | Path,
        *,
        encoder: Encoder | EncoderConfig | None = None,
        vectors: VectorIndexConfig | None = None,
        bm25: BM25Config | None = None,
        chunking: ChunkConfig | None = None,
        overwrite: bool = False,
        batch_size: int = 2048,
        progress: bool = False,
        resume: bool = True,
        runner: BatchRunner | None = None,
    ) -> Index:
        """Encode ``documents`` and write a new index folder at ``path``.

        Everything is written to a fresh generation folder; the manifest that makes it
        current is written last. If reading or encoding fails half-way, the partial
        generation is removed and whatever index was at ``path`` stays as it was. Encoded
        batches are kept in ``path/.build/`` until the build finishes, so the same build
        run again after a crash or kill encodes only what is missing.

        Parameters
        ----------
        documents
            Any iterable, e.g. :func:`densa.corpus.read_corpus`; consumed once, in batches.
        path
            The index folder to create.
        encoder
            An :class:`Encoder`, or the configuration of one (default: bundled MiniLM).
        vectors
            Which FAISS index to build (default exact inner product).
        bm25
            BM25 parameters of the keyword index built alongside.
        chunking
            Split documents longer than ``chunking.max_tokens`` into passages (default: one
            passage per document, truncated at the model's limit and counted).
        overwrite
            Replace an existing index at ``path``.
        batch_size
            Documents read, stored and encoded per step.
        progress
            Show a progress bar.
        resume
            Reuse (and keep) encoded shards of an interrupted build with the same settings.
        runner
            Where batches are encoded (default: this process); see
            :func:`densa.index.distributed.dask_runner`.
        """
        path = Path(path)
        if (path / MANIFEST).exists() and not overwrite:
            raise DensaError(
                f"an index already exists at {path}; pass overwrite=True (--overwrite) to replace it"
            )
        leftovers = {BUILD_DIR, LOCK_FILE}  # an interrupted build leaves these (and gen-* folders)
        if (
            path.exists()
            and not (path / MANIFEST).exists()
            and any(p.name not in leftovers and not p.name.startswith("gen-") for p in path.iterdir())
        ):
            raise DensaError(f"{path} exists and is not a densa index; choose an empty or new folder")
        enc = _make_encoder(encoder)
        vector_config = vectors or VectorIndexConfig()
        bm25_config = bm25 or BM25Config()
        created_dir = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        signature = {
            "encoder": enc.spec.to_dict(),
            "chunking": None if chunking is None else asdict(chunking),
            "batch_size": batch_size,
        }
        shards = ShardCache(path, signature) if resume else None
        try:
            with write_lock(path), GenerationWriter(path, base=None) as writer:
                vecs = VectorIndex.create(enc.spec.dim, vector_config)
                added = encode_into(
                    writer.store,
                    vecs,
                    enc,
                    documents,
                    chunking,
                    batch_size,
                    progress,
                    shards=shards,
                    runner=runner,
                )
                manifest = Manifest(
                    encoder=enc.spec,
                    vectors=vector_config,
                    bm25=bm25_config,
                    chunking=chunking,
                    generation=writer.generation,
                    documents=0,
                    passages=0,
                    truncated=added.truncated,
                )
                writer.commit(manifest, vecs, bm25_config)
        except BaseException:
            nothing_kept = not any((path / BUILD_DIR).glob("shard-*"))
            if created_dir and path.exists() and not (path / MANIFEST).exists() and nothing_kept:
                shutil.rmtree(path, ignore_errors=True)
            raise
        if shards is not None:
            shards.clear()
        opened = cls.open(path, encoder=enc)
        opened.build_stats = BuildStats(
            added.documents, added.passages, added.truncated, time.perf_counter() - start
        )
        return opened

    # ------------------------------------------------------------------- open
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        encoder: Encoder | None = None,
        model: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        backend: Backend | None = None,
    ) -> Index:
        """Open an index folder for search.

        Parameters
        ----------
        encoder
            Use this encoder for queries; it must match the one the index was built with.
        model
            Load the query encoder from this folder instead of the recorded one (it must be
            the same model, e.g. moved); a different model raises :class:`IndexMismatchError`.
        device, batch_size
            Options for the encoder loaded from the manifest.
        backend
            Encode queries on this backend instead of the one the index was built with
            (e.g. ``openvino`` for lower latency); the vectors it makes are checked to be
            the same model's, not compared value by value.
        """
        path = Path(path)
        manifest = Manifest.read(path)
        spec = manifest.encoder
        if encoder is not None:
            _check_same_encoder(path, spec, encoder.spec)
        options: dict[str, Any] = {"device": device, "batch_size": batch_size, "backend": backend}
        if model is not None:
            got = fingerprint(resolve_model_path(model))
            if got != spec.fingerprint:
                raise IndexMismatchError(
                    f"index {path} was built with model {spec.model!r} (fingerprint {spec.fingerprint}); "
                    f"{model!r} is a different model (fingerprint {got}). Rebuild the index with it."
                )
            options["model"] = model
        index = cls(path, manifest, encoder, options)
        if len(index.vectors) != manifest.passages:
            raise DensaError(
                f"{path}: {len(index.vectors)} vectors but the manifest counts {manifest.passages}"
            )
        return index

    @property
    def encoder(self) -> Encoder:
        """The encoder, loaded on first use from the manifest's spec."""
        if self._encoder is None:
            spec = self.manifest.encoder
            config = spec.to_config(
                batch_size=self._encoder_options["batch_size"], device=self._encoder_options["device"]
            )
            if "model" in self._encoder_options:
                config = replace(config, model=self._encoder_options["model"])
            if self._encoder_options.get("backend") is not None:
                config = replace(config, backend=self._encoder_options["backend"])
            encoder = make_encoder(config, calibration=self.calibration_texts)
            _check_same_encoder(self.path, spec, encoder.spec)
            self._encoder = encoder
        return self._encoder

    def use_encoder(self, encoder: Encoder) -> None:
        """Encode queries with ``encoder`` from now on (e.g. the loaded one wrapped in a lock);
        it must be the index's model, as for :meth:`open`."""
        _check_same_encoder(self.path, self.manifest.encoder, encoder.spec)
        self._encoder = encoder

    def calibration_texts(self) -> list[str]:
        """The first stored documents' texts: what calibrates ``openvino-int8`` for queries on
        an index built with another backend."""
        return [doc.full_text for _, doc in islice(self.store.iter_documents(), CALIBRATION_TEXTS)]

    def close(self) -> None:
        self.store.close()

    def __len__(self) -> int:
        return self.manifest.documents

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or ``None``."""
        return self.store.get(doc_id)

    # ---------------------------------------------------------------- updates
    def add(self, documents: Iterable[Document], *, batch_size: int = 2048, progress: bool = False) -> Index:
        """Add documents (vectors, BM25 and store together) and return the updated index.

        The change is written as a new generation and made current atomically; an id
        that is already in the index is an error and changes nothing.
        """
        with write_lock(self.path), GenerationWriter(self.path, base=self._fresh_manifest()) as writer:
            vecs = VectorIndex.load(writer.base_dir / VECTORS_FILE, self.manifest.vectors)
            added = encode_into(
                writer.store, vecs, self.encoder, documents, self.manifest.chunking, batch_size, progress
            )
            manifest = writer.base_manifest.evolve(truncated=writer.base_manifest.truncated + added.truncated)
            writer.commit(manifest, vecs, self.manifest.bm25)
        updated = Index.open(self.path, encoder=self.encoder)
        updated.build_stats = BuildStats(added.documents, added.passages, added.truncated, 0.0)
        return updated

    def delete(self, ids: Sequence[str]) -> Index:
        """Delete documents by id and return the updated index; unknown ids are an error."""
        with write_lock(self.path), GenerationWriter(self.path, base=self._fresh_manifest()) as writer:
            rids = writer.store.rids_of(list(ids))
            missing = [i for i in ids if i not in rids]
            if missing:
                raise InputError(str(self.path), None, f"no such document id(s): {missing[:5]}")
            vecs = VectorIndex.load(writer.base_dir / VECTORS_FILE, self.manifest.vectors)
            vecs.remove(writer.store.pids_of_rids(rids.values()))
            writer.store.remove(list(rids.values()))
            writer.commit(writer.base_manifest.evolve(), vecs, self.manifest.bm25)
        return Index.open(self.path, encoder=self._encoder)

    def _fresh_manifest(self) -> Manifest:
        current = Manifest.read(self.path)
        if current.generation != self.manifest.generation:
            raise DensaError(f"{self.path} was changed by another writer; open it again before updating")
        return current

    # ----------------------------------------------------------------- search
    def search(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        mode: Mode = "dense",
        filter: Filter | None = None,
        config: SearchConfig | None = None,
        reranker: Reranker | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits for each query, best first.

        Parameters
        ----------
        queries
            Query texts (a single string is treated as one query).
        k
            Hits per query (fewer when fewer documents match).
        mode
            ``dense``, ``bm25`` or ``hybrid`` (ignored when ``config`` is given).
        filter
            Only documents whose metadata has every ``field: value`` of this mapping.
        config, reranker
            Full search configuration and an optional cross-encoder; see
            :class:`densa.search.Searcher`.
        """
        from densa.search.searcher import SearchConfig, Searcher

        if isinstance(queries, str):
            queries = [queries]
        searcher = Searcher(self, config or SearchConfig(mode=mode), reranker=reranker)
        return searcher.hits(list(queries), k, filter=filter)

    def allowed(self, filter: Filter | None) -> set[int] | None:
        """Row ids passing ``filter`` (``None`` when there is no filter)."""
        return None if not filter else self.store.matching(filter)

    def dense_scores(
        self,
        query_vectors: npt.NDArray[np.float32],
        k: int,
        allowed: Collection[int] | None = None,
        *,
        aggregate: str = "max",
        top_passages: int = 3,
    ) -> DenseScores:
        """Top-``k`` documents per query vector, a document scored by its passages.

        Parameters
        ----------
        query_vectors
            Shape ``(n, dim)``.
        allowed
            Row ids that may be returned (``None``: all).
        aggregate
            ``max``: the best passage's score. ``sum``: the sum of its ``top_passages`` best.
        """
        chunked = self.manifest.passages > self.manifest.documents
        pids = None if allowed is None else self.store.pids_of_rids(allowed)
        want = min(k * 4 + 16, self.manifest.passages) if chunked else k
        while True:
            scores, ids = self.vectors.search(query_vectors, want, allowed=pids)
            passages = self.store.passages(int(i) for i in ids.ravel() if i >= 0)
            results = [
                _aggregate(row_s, row_i, passages, aggregate, top_passages)
                for row_s, row_i in zip(scores, ids, strict=True)
            ]
            if not chunked or want >= self.manifest.passages or all(len(r) >= k for r in results):
                return [dict(sorted(r.items(), key=lambda kv: -kv[1][0])[:k]) for r in results]
            want = min(want * 4, self.manifest.passages)

    def bm25_scores(
        self, texts: Sequence[str], k: int, allowed: Collection[int] | None = None
    ) -> list[dict[int, float]]:
        """BM25 top-``k`` ``{row id: score}`` per query text."""
        return self.bm25.search(texts, k, allowed)

    def passage_text(self, pid: int) -> str:
        """The text span of one passage."""
        rid, start, end = self.store.passages([pid])[pid]
        doc = self.store.get_many([rid])[rid]
        return doc.text[start:end]

    def info(self) -> dict[str, Any]:
        """The manifest plus on-disk size, as shown by ``densa info``."""
        data = self.manifest.to_dict()
        data["path"] = str(self.path)
        data["bytes"] = {**data["bytes"], "on_disk": dir_bytes(self.path / self.manifest.generation)}
        return data


def _aggregate(
    scores: npt.NDArray[np.float32],
    ids: npt.NDArray[np.int64],
    passages: dict[int, tuple[int, int, int]],
    how: str,
    top: int,
) -> dict[int, tuple[float, int]]:
    per_doc: dict[int, list[tuple[float, int]]] = {}
    for score, pid in zip(scores, ids, strict=True):
        if pid >= 0 and int(pid) in passages:
            per_doc.setdefault(passages[int(pid)][0], []).append((float(score), int(pid)))
    out: dict[int, tuple[float, int]] = {}
    for rid, found in per_doc.items():
        found.sort(key=lambda sp: -sp[0])
        value = found[0][0] if how == "max" else sum(s for s, _ in found[:top])
        out[rid] = (value, found[0][1])
    return out


def _check_same_encoder(path: Path, built: EncoderSpec, given: EncoderSpec) -> None:
    differences = [
        f"{name}: index has {getattr(built, name)!r}, encoder has {getattr(given, name)!r}"
        for name in _SPEC_FIELDS_THAT_CHANGE_VECTORS
        if getattr(built, name) != getattr(given, name)
    ]
    if differences:
        raise IndexMismatchError(
            f"index {path} was built with another encoder ({built.model!r}): " + "; ".join(differences)
        )
