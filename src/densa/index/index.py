"""The index folder: document store + vector index + manifest, built and opened as one.

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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.encode.config import EncoderConfig, EncoderSpec
from densa.encode.encoder import Encoder, SentenceTransformerEncoder
from densa.encode.model_files import fingerprint, resolve_model_path
from densa.errors import DensaError, IndexMismatchError
from densa.index.manifest import MANIFEST, Manifest
from densa.index.store import DocumentStore
from densa.index.vectors import VectorIndex, VectorIndexConfig
from densa.types import Document, Hit

__all__ = ["BuildStats", "Index"]

DOCS_FILE = "docs.sqlite"
_PROGRESS_STEP = 256
VECTORS_FILE = "vectors.faiss"
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


@dataclass(frozen=True)
class BuildStats:
    """What a build did: documents indexed, passages over the token limit, time taken."""

    documents: int
    truncated: int
    seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0


def _batched(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _next_generation(path: Path) -> str:
    numbers = [int(p.name[4:]) for p in path.glob("gen-*") if p.name[4:].isdigit()]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _make_encoder(encoder: Encoder | EncoderConfig | None) -> Encoder:
    if encoder is None or isinstance(encoder, EncoderConfig):
        return SentenceTransformerEncoder(encoder, show_progress=False)
    return encoder


class Index:
    """A densa index folder opened for search.

    Use :meth:`build` to create one and :meth:`open` to load one; the constructor is internal.
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        store: DocumentStore,
        vectors: VectorIndex,
        encoder: Encoder | None,
        encoder_options: dict[str, Any],
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.store = store
        self.vectors = vectors
        self._encoder = encoder
        self._encoder_options = encoder_options
        self.build_stats: BuildStats | None = None

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        path: str | Path,
        *,
        encoder: Encoder | EncoderConfig | None = None,
        vectors: VectorIndexConfig | None = None,
        overwrite: bool = False,
        batch_size: int = 2048,
        progress: bool = False,
    ) -> Index:
        """Encode ``documents`` and write a new index folder at ``path``.

        Everything is written to a fresh generation folder first; the manifest that makes
        it current is written last. If reading or encoding fails half-way, the partial
        generation is removed and whatever index was at ``path`` stays as it was.

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
        overwrite
            Replace an existing index at ``path``.
        batch_size
            Documents read, stored and encoded per step (sorted by length inside a step).
        progress
            Show a progress bar.
        """
        path = Path(path)
        if (path / MANIFEST).exists() and not overwrite:
            raise DensaError(
                f"an index already exists at {path}; pass overwrite=True (--overwrite) to replace it"
            )
        if path.exists() and not (path / MANIFEST).exists() and any(path.iterdir()):
            raise DensaError(f"{path} exists and is not a densa index; choose an empty or new folder")
        enc = _make_encoder(encoder)
        vector_config = vectors or VectorIndexConfig()
        created_dir = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        generation = _next_generation(path)
        gen_dir = path / generation
        gen_dir.mkdir()
        start = time.perf_counter()
        try:
            store = DocumentStore(gen_dir / DOCS_FILE)
            index = VectorIndex.create(enc.spec.dim, vector_config)
            truncated = _fill(store, index, enc, documents, batch_size, progress)
            store.commit()
            store.close()
            index.save(gen_dir / VECTORS_FILE)
        except BaseException:
            shutil.rmtree(gen_dir, ignore_errors=True)
            if created_dir and not any(path.iterdir()):
                path.rmdir()
            raise
        manifest = Manifest(
            encoder=enc.spec,
            vectors=vector_config,
            generation=generation,
            documents=len(index),
            truncated=truncated,
            bytes={
                "vectors": (gen_dir / VECTORS_FILE).stat().st_size,
                "total": _dir_bytes(gen_dir),
            },
        )
        _commit_generation(path, manifest)
        opened = cls.open(path, encoder=enc)
        opened.build_stats = BuildStats(len(index), truncated, time.perf_counter() - start)
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
        """
        path = Path(path)
        manifest = Manifest.read(path)
        spec = manifest.encoder
        if encoder is not None:
            _check_same_encoder(path, spec, encoder.spec)
        options: dict[str, Any] = {"device": device, "batch_size": batch_size}
        if model is not None:
            got = fingerprint(resolve_model_path(model))
            if got != spec.fingerprint:
                raise IndexMismatchError(
                    f"index {path} was built with model {spec.model!r} (fingerprint {spec.fingerprint}); "
                    f"{model!r} is a different model (fingerprint {got}). Rebuild the index with it."
                )
            options["model"] = model
        gen_dir = path / manifest.generation
        store = DocumentStore(gen_dir / DOCS_FILE, read_only=True)
        vectors = VectorIndex.load(gen_dir / VECTORS_FILE, manifest.vectors)
        if len(vectors) != manifest.documents:
            raise DensaError(f"{path}: {len(vectors)} vectors but the manifest counts {manifest.documents}")
        return cls(path, manifest, store, vectors, encoder, options)

    @property
    def encoder(self) -> Encoder:
        """The query encoder, loaded on first use from the manifest's spec."""
        if self._encoder is None:
            spec = self.manifest.encoder
            config = spec.to_config(
                batch_size=self._encoder_options["batch_size"],
                device=self._encoder_options["device"],
            )
            if "model" in self._encoder_options:
                config = EncoderConfig(**{**config.__dict__, "model": self._encoder_options["model"]})
            encoder = SentenceTransformerEncoder(config)
            _check_same_encoder(self.path, spec, encoder.spec)
            self._encoder = encoder
        return self._encoder

    def close(self) -> None:
        self.store.close()

    def __len__(self) -> int:
        return len(self.vectors)

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or ``None``."""
        return self.store.get(doc_id)

    # ----------------------------------------------------------------- search
    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Dense top-``k`` hits for each query, best first.

        Parameters
        ----------
        queries
            Query texts (a single string is treated as one query).
        k
            Hits per query (fewer when the index holds fewer documents).
        """
        if isinstance(queries, str):
            queries = [queries]
        if k < 1:
            raise ValueError("k must be at least 1")
        if not queries:
            return []
        return self.search_vectors(self.encoder.encode_queries(list(queries)), k)

    def search_vectors(self, query_vectors: npt.NDArray[np.float32], k: int) -> list[list[Hit]]:
        """Top-``k`` hits for already encoded queries of shape ``(n, dim)``."""
        scores, ids = self.vectors.search(query_vectors, k)
        docs = self.store.get_many(int(i) for i in ids.ravel() if i >= 0)
        results: list[list[Hit]] = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits: list[Hit] = []
            for score, rid in zip(row_scores, row_ids, strict=True):
                doc = docs.get(int(rid))
                if rid < 0 or doc is None:
                    continue
                hits.append(Hit(doc.id, float(score), len(hits) + 1, doc.title, doc.text, doc.metadata))
            results.append(hits)
        return results

    def info(self) -> dict[str, Any]:
        """The manifest plus on-disk size, as shown by ``densa info``."""
        data = self.manifest.to_dict()
        data["path"] = str(self.path)
        data["bytes"] = {
            **data["bytes"],
            "on_disk": _dir_bytes(self.path / self.manifest.generation),
        }
        return data


def _fill(
    store: DocumentStore,
    index: VectorIndex,
    encoder: Encoder,
    documents: Iterable[Document],
    batch_size: int,
    progress: bool,
) -> int:
    from tqdm.auto import tqdm

    truncated = 0
    with tqdm(desc="encoding", unit="doc", disable=not progress, dynamic_ncols=True) as bar:
        for batch in _batched(documents, batch_size):
            rids = store.add(batch)
            texts = [d.full_text for d in batch]
            truncated += encoder.count_truncated(texts)
            # longest first, so each forward pass pads to similar lengths
            order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
            for start in range(0, len(order), _PROGRESS_STEP):
                part = order[start : start + _PROGRESS_STEP]
                index.add(encoder.encode_documents([texts[i] for i in part]), [rids[i] for i in part])
                bar.update(len(part))
    return truncated


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


def _commit_generation(path: Path, manifest: Manifest) -> None:
    """Make ``manifest.generation`` current, then remove every other generation folder."""
    manifest.write(path)
    for old in path.glob("gen-*"):
        if old.name != manifest.generation:
            shutil.rmtree(old, ignore_errors=True)
