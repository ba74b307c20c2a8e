"""Writing index generations: the one code path behind build, add and delete.

A :class:`GenerationWriter` starts a new generation folder (a copy of the current
document store when updating), lets the caller change the store and vectors, then
rebuilds BM25 from the store, saves everything, fsyncs it, and replaces the manifest.
If anything fails before that rename, the new folder is removed and the index is as
it was; a process killed before it leaves an orphan folder that the next writer removes.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from densa.chunk.chunker import ChunkConfig, Chunker, Span
from densa.encode.encoder import Encoder
from densa.index.bm25 import BM25Config, BM25Index
from densa.index.manifest import MANIFEST, Manifest
from densa.index.shards import ShardCache, batch_digest
from densa.index.store import DocumentStore
from densa.index.vectors import VectorIndex
from densa.types import Document

__all__ = [
    "BM25_DIR",
    "DOCS_FILE",
    "LOCK_FILE",
    "VECTORS_FILE",
    "Added",
    "BatchRunner",
    "BuildStats",
    "GenerationWriter",
    "LocalRunner",
    "Pending",
    "dir_bytes",
    "encode_batch",
    "encode_into",
    "write_lock",
]

DOCS_FILE = "docs.sqlite"
VECTORS_FILE = "vectors.faiss"
BM25_DIR = "bm25"
LOCK_FILE = ".lock"
_ENCODE_STEP = 256


@dataclass(frozen=True)
class Added:
    """What one :func:`encode_into` call stored."""

    documents: int
    passages: int
    truncated: int


@dataclass(frozen=True)
class BuildStats:
    """What a build did: documents and passages indexed, documents over the token limit, time."""

    documents: int
    passages: int
    truncated: int
    seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold the index's exclusive writer lock (one writer at a time, across processes)."""
    with (path / LOCK_FILE).open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _next_generation(path: Path) -> str:
    numbers = [int(p.name[4:]) for p in path.glob("gen-*") if p.name[4:].isdigit()]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class GenerationWriter:
    """Context manager that prepares a new generation and commits it atomically."""

    def __init__(self, path: Path, base: Manifest | None) -> None:
        self.path = path
        self._base = base
        self.generation = _next_generation(path)
        self.dir = path / self.generation
        self._committed = False

    @property
    def base_manifest(self) -> Manifest:
        assert self._base is not None, "a build has no base generation"
        return self._base

    @property
    def base_dir(self) -> Path:
        return self.path / self.base_manifest.generation

    def __enter__(self) -> GenerationWriter:
        current = Manifest.read(self.path).generation if (self.path / MANIFEST).exists() else None
        for orphan in self.path.glob("gen-*"):  # left by a writer that was killed (its encoded
            # shards, if any, survive in .build/ and are reused)
            if orphan.name != current:
                shutil.rmtree(orphan, ignore_errors=True)
        self.dir.mkdir()
        if self._base is not None:
            shutil.copyfile(self.base_dir / DOCS_FILE, self.dir / DOCS_FILE)
        self.store = DocumentStore(self.dir / DOCS_FILE)
        return self

    def commit(self, manifest: Manifest, vectors: VectorIndex, bm25: BM25Config) -> Manifest:
        """Save store, vectors and a rebuilt BM25, then make this generation current."""
        self.store.commit()
        rids, texts = [], []
        for rid, doc in self.store.iter_documents():
            rids.append(rid)
            texts.append(doc.full_text)
        BM25Index.build(rids, texts, bm25).save(self.dir / BM25_DIR)
        vectors.save(self.dir / VECTORS_FILE)
        self.store.close()
        _fsync_tree(self.dir)
        final = replace(
            manifest,
            generation=self.generation,
            documents=len(rids),
            passages=len(vectors),
            bytes={
                "vectors": (self.dir / VECTORS_FILE).stat().st_size,
                "vector_codes": vectors.memory_bytes(),
                "total": dir_bytes(self.dir),
            },
        )
        final.write(self.path)
        self._committed = True
        for old in self.path.glob("gen-*"):
            if old.name != self.generation:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._committed:
            self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)


def _batched(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _passage_text(doc: Document, span: Span) -> str:
    body = doc.text[span[0] : span[1]]
    return f"{doc.title} {body}".strip() if doc.title else body


class Pending(Protocol):
    """A batch being encoded: ``result()`` gives its vectors and truncation count."""

    def result(self) -> tuple[npt.NDArray[np.float32], int]: ...


class BatchRunner(Protocol):
    """Where batches are encoded: in this process, or on a cluster (``densa.index.distributed``)."""

    def submit(self, passages: list[str], documents: list[str]) -> Pending: ...

    @property
    def window(self) -> int:
        """Batches allowed in flight at once."""
        ...


def encode_batch(
    encoder: Encoder,
    passages: list[str],
    documents: list[str],
    progress: Callable[[int], object] | None = None,
) -> tuple[npt.NDArray[np.float32], int]:
    """Vectors of ``passages`` in their order (encoded longest first, so each forward pass pads
    to similar lengths) and how many ``documents`` exceed the model's token limit."""
    truncated = encoder.count_truncated(documents)
    out = np.empty((len(passages), encoder.spec.dim), dtype=np.float32)
    order = sorted(range(len(passages)), key=lambda i: -len(passages[i]))
    for start in range(0, len(order), _ENCODE_STEP):
        part = order[start : start + _ENCODE_STEP]
        out[part] = encoder.encode_documents([passages[i] for i in part])
        if progress is not None:
            progress(len(part))
    return out, truncated


@dataclass(frozen=True)
class _Done:
    value: tuple[npt.NDArray[np.float32], int]

    def result(self) -> tuple[npt.NDArray[np.float32], int]:
        return self.value


class LocalRunner:
    """Encodes each batch right away in this process, updating a progress bar as it goes."""

    window = 1

    def __init__(self, encoder: Encoder, progress: Callable[[int], object] | None = None) -> None:
        self.encoder = encoder
        self.progress = progress

    def submit(self, passages: list[str], documents: list[str]) -> Pending:
        return _Done(encode_batch(self.encoder, passages, documents, self.progress))


def encode_into(
    store: DocumentStore,
    vectors: VectorIndex,
    encoder: Encoder,
    documents: Iterable[Document],
    chunking: ChunkConfig | None,
    batch_size: int,
    progress: bool,
    *,
    shards: ShardCache | None = None,
    runner: BatchRunner | None = None,
) -> Added:
    """Store ``documents``, split them into passages, encode them and add their vectors.

    Batches are numbered in reading order. A batch already in ``shards`` (same passage ids
    and texts) is not encoded again; a new one is encoded by ``runner`` (default: here) and
    saved to ``shards``. Vectors are added in batch order whatever the runner, so a resumed
    or distributed build equals a plain one.

    Returns the counts, with ``truncated`` = documents longer than the model's limit (which
    lose their tail unless ``chunking`` is set).
    """
    from tqdm.auto import tqdm

    chunker = Chunker(encoder.tokenizer, chunking) if chunking is not None else None
    n_docs = n_passages = truncated = 0
    pending: deque[tuple[int, str, list[int], Pending, bool]] = deque()
    with tqdm(desc="encoding", unit="passage", disable=not progress, dynamic_ncols=True) as bar:
        run = runner or LocalRunner(encoder, bar.update)

        def finish() -> None:
            nonlocal truncated
            number, digest, pids, job, cached = pending.popleft()
            matrix, batch_truncated = job.result()
            if not cached and shards is not None:
                shards.save(number, digest, matrix, batch_truncated)
            if cached or runner is not None:
                bar.update(len(pids))
            vectors.add(matrix, pids)
            truncated += batch_truncated

        for number, batch in enumerate(_batched(documents, batch_size)):
            rids = store.add(batch)
            spans = chunker.split([d.text for d in batch]) if chunker else [[(0, len(d.text))] for d in batch]
            pids = store.add_passages(rids, spans)
            texts = [
                _passage_text(d, s) for d, doc_spans in zip(batch, spans, strict=True) for s in doc_spans
            ]
            flat_pids = [p for doc_pids in pids for p in doc_pids]
            digest = batch_digest(flat_pids, texts)
            found = shards.load(number, digest) if shards is not None else None
            if found is not None:
                pending.append((number, digest, flat_pids, _Done(found), True))
            else:
                job = run.submit(texts, [d.full_text for d in batch])
                pending.append((number, digest, flat_pids, job, False))
            while len(pending) >= run.window:
                finish()
            n_docs += len(batch)
            n_passages += len(texts)
        while pending:
            finish()
    return Added(n_docs, n_passages, truncated)
