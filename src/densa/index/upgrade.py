"""``densa upgrade``: convert an index of format 1 (one generation folder, no segments) in place.

Format 1 kept one ``gen-NNNNNN/`` folder holding ``docs.sqlite`` (documents and passages
under row and passage ids with gaps left by deletes), ``vectors.faiss`` (an
``IndexIDMap2`` keyed by passage id, plus ``raw-vectors.npy`` / ``raw-ids.npy`` for the
lossy kinds) and a bm25s index. The conversion writes one segment: documents renumbered
0..n-1 in row order, every passage's vector taken from the old FAISS file (no model is
loaded, nothing is re-encoded), and BM25 postings from the stored texts. The new
manifest replaces the old one atomically; the old folder is removed only after that.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from densa.chunk.chunker import ChunkConfig
from densa.encode.config import EncoderSpec
from densa.errors import DensaError
from densa.index.channels.base import BuildJob
from densa.index.channels.bm25 import BM25Config, BM25Kind
from densa.index.channels.dense import DenseKind
from densa.index.leases import collect_garbage
from densa.index.manifest import COMMITS_DIR, MANIFEST, SEGMENTS_DIR, ChannelRecord, Manifest, SegmentRecord
from densa.index.store import StoreWriter
from densa.index.vectors import VectorIndexConfig
from densa.index.writer import LOCK_FILE, commit, dir_bytes, unit_texts
from densa.types import Document

__all__ = ["upgrade_index"]

_BATCH = 2048


def _old_vectors(folder: Path, kind: str, pids: list[int]) -> np.ndarray:
    """The float vectors of ``pids`` from a format-1 generation folder."""
    faiss: Any = importlib.import_module("faiss")
    if kind not in ("flat", "hnsw"):
        raw = np.load(folder / "raw-vectors.npy", mmap_mode="r", allow_pickle=False)
        raw_ids = np.load(folder / "raw-ids.npy", allow_pickle=False)
        row = {int(i): r for r, i in enumerate(raw_ids.tolist())}
        return np.asarray(raw[[row[p] for p in pids]], dtype=np.float32)
    index = faiss.read_index(str(folder / "vectors.faiss"))
    return (
        np.stack([index.reconstruct(p) for p in pids]).astype(np.float32) if pids else np.zeros((0, index.d))
    )


def upgrade_index(path: Path) -> str:
    """Convert the format-1 index at ``path``; returns a one-line report."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise DensaError(f"{path} is not a densa index: no {MANIFEST}")
    with (path / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
            if old.get("format") != 1:
                Manifest.read(path)  # a clear error for anything unreadable
                return f"{path} is already in the current format; nothing to do"
            return _convert(path, old)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _convert(path: Path, old: dict[str, Any]) -> str:
    gen_name = str(old["generation"])
    if not gen_name.startswith("gen-") or not gen_name[4:].isdigit() or not (path / gen_name).is_dir():
        raise DensaError(f"{path / MANIFEST}: generation {gen_name!r} is not a folder of this index")
    source = path / gen_name
    for leftover in (SEGMENTS_DIR, COMMITS_DIR):  # a killed upgrade's
        shutil.rmtree(path / leftover, ignore_errors=True)
    spec = EncoderSpec.from_dict(old["encoder"])
    vectors = VectorIndexConfig.from_dict(old["vectors"])
    bm25 = BM25Config.from_dict(old["bm25"])
    chunking = ChunkConfig(**old["chunking"]) if old.get("chunking") else None
    dense, keywords = DenseKind(spec, vectors), BM25Kind(bm25)
    folder = path / SEGMENTS_DIR / "seg-000001"
    db = sqlite3.connect(f"{(source / 'docs.sqlite').resolve().as_uri()}?mode=ro", uri=True)
    store = StoreWriter(folder)
    try:
        bm25_writer = keywords.part_writer(folder / "bm25", BuildJob())
        pids: list[int] = []
        rows = db.execute("SELECT rid, id, title, text, metadata FROM documents ORDER BY rid")
        while batch := rows.fetchmany(_BATCH):
            docs = [Document(i, text, title, json.loads(meta)) for _, i, title, text, meta in batch]
            spans, batch_pids = [], []
            for rid, *_ in batch:
                found = db.execute(
                    "SELECT pid, start, end FROM passages WHERE rid = ? ORDER BY start, pid", (rid,)
                )
                passages = found.fetchall()
                spans.append([(int(a), int(b)) for _, a, b in passages])
                batch_pids += [int(p) for p, _, _ in passages]
            store.add(docs, spans)
            bm25_writer.add(unit_texts(docs, spans, "document"), docs)
            pids += batch_pids
        n_rows = store.rows
        n_passages = store.finish()
        truncated = int(old.get("counts", {}).get("truncated", 0))
        parts = {
            "dense": dense.write_vectors(
                _old_vectors(source, vectors.kind, pids), folder / "dense", bulk=True, truncated=truncated
            ),
            "bm25": bm25_writer.finish(),
        }
    except BaseException:
        store.abort()
        shutil.rmtree(path / SEGMENTS_DIR, ignore_errors=True)
        raise
    finally:
        db.close()
    segment = SegmentRecord(
        name="seg-000001",
        first_row=0,
        first_passage=0,
        rows=n_rows,
        passages=n_passages,
        parts=parts,
        store_bytes=dir_bytes(folder) - sum(int(p["bytes"]) for p in parts.values()),
    )
    manifest = Manifest(
        generation=int(gen_name[4:]) + 1,
        channels={
            "dense": ChannelRecord("dense", dense.settings()),
            "bm25": ChannelRecord("bm25", keywords.settings()),
        },
        segments=(segment,),
        chunking=chunking,
        next_row=n_rows,
        next_passage=n_passages,
        next_segment=2,
    )
    if old.get("created"):
        manifest = replace(manifest, created=str(old["created"]))
    commit(path, manifest)
    for generation in path.glob("gen-*"):
        shutil.rmtree(generation, ignore_errors=True)
    collect_garbage(path, manifest)
    return (
        f"upgraded {path} from format 1 to format {manifest.format}: {n_rows} documents, "
        f"{n_passages} passages in one segment, channels dense + bm25 (no re-encoding)"
    )
