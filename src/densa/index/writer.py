"""Writing an index: new segments, tombstones and merges, each made current by one commit.

Every change follows one discipline (Lucene's, with a JSON commit point):

1. take the index's exclusive writer lock (one writer at a time, across processes);
2. remove what a killed writer left (files no held generation refers to);
3. write new files only: a segment folder (documents, passages, one part per channel), a
   tombstone file, a channel part; fsync them;
4. write ``commits/gen-N.json`` and then replace ``manifest.json`` atomically: the commit;
5. remove old generations no reader holds (:mod:`densa.index.leases`).

A failure before step 4 removes the new files and leaves the index as it was; a kill
leaves orphans that the next writer removes. An add costs O(added documents); a delete
O(deleted ids); neither rewrites existing segments. Merges (:mod:`densa.index.merge`)
rewrite a few segments into one, from their stored parts, without re-encoding.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from densa._version import __version__
from densa.chunk.chunker import ChunkConfig, Chunker
from densa.errors import ConflictError, DensaError, NotFoundError
from densa.index.channels.base import BoolArray, BuildJob, ChannelKind, MergeableKind, TokenizingKind
from densa.index.engines.base import remove_folder
from densa.index.leases import collect_garbage
from densa.index.manifest import (
    COMMITS_DIR,
    MANIFEST,
    SEGMENTS_DIR,
    ChannelRecord,
    Manifest,
    SegmentRecord,
    commit_name,
    fsync_dir,
)
from densa.index.segments import SegmentReader, read_tombstones
from densa.index.store import SegmentStore, StoreWriter
from densa.types import Document

__all__ = [
    "LOCK_FILE",
    "Progress",
    "SegmentSource",
    "channel_records",
    "chunker_for",
    "commit",
    "delete_documents",
    "dir_bytes",
    "merge_segments",
    "unit_texts",
    "write_channel_parts",
    "write_lock",
    "write_segment",
]

LOCK_FILE = ".lock"

#: Called with the number of documents just written (a progress bar's ``update``).
Progress = Callable[[int], object]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def write_lock(path: Path) -> Iterator[Manifest | None]:
    """Hold the index's exclusive writer lock; yields the current manifest (``None`` for a
    new index) after removing what a killed writer left behind."""
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK_FILE).open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            current = Manifest.read(path) if (path / MANIFEST).exists() else None
            if current is not None and _version_tuple(current.densa_version) > _version_tuple(__version__):
                raise DensaError(
                    f"{path} was last written by densa {current.densa_version}, newer than this one "
                    f"({__version__}); upgrade densa before changing it"
                )
            collect_garbage(path, current)
            yield current
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def commit(path: Path, manifest: Manifest) -> Manifest:
    """Make ``manifest`` the current generation (the commit point), then remove what no
    generation in use refers to any more."""
    commits = path / COMMITS_DIR
    commits.mkdir(exist_ok=True)
    manifest.write(commits / commit_name(manifest.generation))
    manifest.write(path / MANIFEST)
    collect_garbage(path, manifest)
    return manifest


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for folder in [path, *(p for p in path.rglob("*") if p.is_dir())]:
        fsync_dir(folder)


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def unit_texts(
    documents: Sequence[Document], spans: Sequence[Sequence[tuple[int, int]]], unit: str
) -> list[str]:
    """The texts a channel encodes: each passage with its document's title in front, or each
    whole document (title and text)."""
    if unit == "document":
        return [d.full_text for d in documents]
    out = []
    for doc, doc_spans in zip(documents, spans, strict=True):
        for a, b in doc_spans:
            body = doc.text[a:b]
            out.append(f"{doc.title} {body}".strip() if doc.title else body)
    return out


@dataclass(frozen=True)
class SegmentSource:
    """Where a new segment's numbering starts and what it must not duplicate."""

    name: str
    first_row: int
    first_passage: int
    live_ids: Callable[[list[str]], Mapping[str, int]] | None = None


def write_segment(
    path: Path,
    source: SegmentSource,
    documents: Iterable[Document],
    kinds: Mapping[str, ChannelKind],
    chunker: Chunker | None,
    *,
    batch_size: int,
    jobs: Callable[[str], BuildJob],
    progress: Progress | None = None,
) -> SegmentRecord:
    """Write ``documents`` as a new segment folder (store + every channel's part); on any error
    the folder is removed and the error raised.

    Raises
    ------
    InputError
        A document id already live in the index (``source.live_ids``) or given twice.
    """
    folder = path / SEGMENTS_DIR / source.name
    if folder.exists():
        raise DensaError(f"{folder} exists: another writer is running without the lock?")
    store = StoreWriter(folder)
    try:
        writers = {name: kind.part_writer(folder / name, jobs(name)) for name, kind in kinds.items()}
        for batch in _batched(documents, batch_size):
            if source.live_ids is not None:
                taken = source.live_ids([d.id for d in batch])
                if taken:
                    raise ConflictError(f"document id(s) already in the index: {sorted(taken)[:5]}")
            spans = chunker.split([d.text for d in batch]) if chunker else [[(0, len(d.text))] for d in batch]
            store.add(batch, spans)
            for name, kind in kinds.items():
                writers[name].add(unit_texts(batch, spans, kind.unit), batch)
            if progress is not None:
                progress(len(batch))
        rows = store.rows
        passages = store.finish()
        parts = {name: writer.finish() for name, writer in writers.items()}
        _fsync_tree(folder)
    except BaseException:
        store.abort()
        remove_folder(folder)
        raise
    return _record(folder, source.first_row, source.first_passage, rows, passages, parts)


def _record(
    folder: Path,
    first_row: int,
    first_passage: int,
    rows: int,
    passages: int,
    parts: dict[str, dict[str, Any]],
) -> SegmentRecord:
    """The manifest record of the segment just written in ``folder``."""
    return SegmentRecord(
        name=folder.name,
        first_row=first_row,
        first_passage=first_passage,
        rows=rows,
        passages=passages,
        parts=parts,
        store_bytes=dir_bytes(folder) - sum(int(p.get("bytes", 0)) for p in parts.values()),
    )


def _segment_batches(
    store: SegmentStore, rows: Sequence[int], batch_size: int
) -> Iterator[tuple[list[Document], list[list[tuple[int, int]]]]]:
    """Stored documents of ``rows`` with their passage spans, in batches."""
    for part in _batched(rows, batch_size):
        docs = [doc for _, doc in store.iter_documents(part)]
        # passages are stored in row order: each row's passages are one contiguous run
        starts = np.searchsorted(store.passage_rows, part, side="left")
        ends = np.searchsorted(store.passage_rows, part, side="right")
        spans = [
            [(int(a), int(b)) for _, a, b in np.asarray(store.passages[start:end]).tolist()]
            for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        yield docs, spans


def write_channel_parts(
    path: Path,
    manifest: Manifest,
    readers: Mapping[str, SegmentReader],
    name: str,
    kind: ChannelKind,
    jobs: Callable[[str], BuildJob],
    *,
    batch_size: int,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Write channel ``name``'s part into every segment of ``manifest`` from the stored texts
    (all rows, deleted ones too, so that local ids stay aligned); returns each part's stats."""

    def write(record: SegmentRecord, folder: Path) -> dict[str, Any]:
        writer = kind.part_writer(folder, jobs(f"{name}-{record.name}"))
        store = readers[record.name].store
        for docs, spans in _segment_batches(store, range(record.rows), batch_size):
            writer.add(unit_texts(docs, spans, kind.unit), docs)
            if progress is not None:
                progress(len(docs))
        return writer.finish()

    return _each_part(path, manifest, name, write)


def copy_channel_parts(
    path: Path,
    manifest: Manifest,
    source: str,
    name: str,
    kind: MergeableKind,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Write channel ``name``'s part into every segment of ``manifest`` from channel
    ``source``'s stored form (every unit, deleted ones too), through ``kind.merge_parts``: no
    re-encoding; returns each part's stats (``truncated`` carried over from ``source``)."""

    def write(record: SegmentRecord, folder: Path) -> dict[str, Any]:
        units = record.passages if getattr(kind, "unit", "passage") == "passage" else record.rows
        stats = kind.merge_parts([(folder.parent / source, np.ones(units, bool))], folder, True)
        truncated = int(record.parts.get(source, {}).get("truncated", 0))
        if truncated:
            stats["truncated"] = truncated
        if progress is not None:
            progress(record.rows)
        return stats

    return _each_part(path, manifest, name, write)


def _each_part(
    path: Path, manifest: Manifest, name: str, write: Callable[[SegmentRecord, Path], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``write(record, part folder)`` channel ``name``'s part of every segment of ``manifest``
    and fsync it; on any error every part written is removed (with its engine collection)."""
    written: list[Path] = []
    stats: dict[str, dict[str, Any]] = {}
    try:
        for record in manifest.segments:
            folder = path / SEGMENTS_DIR / record.name / name
            remove_folder(folder)  # a killed run's leftovers
            written.append(folder)
            stats[record.name] = write(record, folder)
            _fsync_tree(folder)
    except BaseException:
        for folder in written:
            remove_folder(folder)
        raise
    return stats


def delete_documents(
    path: Path, current: Manifest, readers: Mapping[str, SegmentReader], ids: Sequence[str]
) -> Manifest:
    """The next generation with ``ids`` tombstoned; unknown (or already deleted) ids are an
    error that changes nothing."""
    generation = current.generation + 1
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}  # id -> segment holding it live
    segments: list[SegmentRecord] = []
    new_files: list[Path] = []
    try:
        for record in current.segments:
            reader = readers[record.name]
            live = reader.live(record)
            located = {
                i: r
                for i, r in reader.store.rows_of([i for i in wanted if i not in found]).items()
                if live is None or live[r]
            }
            found.update(dict.fromkeys(located, record.name))
            rows = list(located.values())
            if not rows:
                segments.append(record)
                continue
            old = (
                read_tombstones(reader.folder / record.deletes, record.rows)
                if record.deletes
                else np.zeros(0, np.int64)
            )
            deleted = np.union1d(old, np.asarray(rows, dtype=np.int64))
            tombstone = reader.folder / f"deletes-{generation:06d}.npy"
            with tombstone.open("wb") as f:
                np.save(f, deleted, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            new_files.append(tombstone)
            dead: BoolArray = np.zeros(record.rows, dtype=bool)
            dead[deleted] = True
            segments.append(
                replace(
                    record,
                    deleted=len(deleted),
                    deleted_passages=int(dead[reader.store.passage_rows].sum()),
                    deletes=tombstone.name,
                )
            )
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFoundError(f"no such document id(s): {missing[:5]}")
    except BaseException:
        for file in new_files:
            file.unlink(missing_ok=True)
        raise
    for file in new_files:
        fsync_dir(file.parent)
    return current.evolve(segments=tuple(segments))


def merge_segments(
    path: Path,
    current: Manifest,
    readers: Mapping[str, SegmentReader],
    kinds: Mapping[str, ChannelKind],
    names: Sequence[str],
    *,
    bulk: bool,
    batch_size: int = 2048,
) -> Manifest:
    """The next generation with the segments ``names`` replaced by one holding their live
    documents (in order), its parts merged from the stored ones (no re-encoding where the
    kind can merge; otherwise written from the stored texts)."""
    sources = [s for s in current.segments if s.name in set(names)]
    kept = tuple(s for s in current.segments if s.name not in set(names))
    if not any(s.live for s in sources):  # nothing live: the segments just go
        return current.evolve(segments=kept)
    name = f"seg-{current.next_segment:06d}"
    folder = path / SEGMENTS_DIR / name
    store = StoreWriter(folder)
    try:
        keeps: list[BoolArray] = []
        for record in sources:
            reader = readers[record.name]
            live = reader.live(record)
            keep = np.ones(record.rows, dtype=bool) if live is None else live
            keeps.append(keep)
            for docs, spans in _segment_batches(reader.store, np.flatnonzero(keep).tolist(), batch_size):
                store.add(docs, spans)
        rows = store.rows
        passages = store.finish()
        parts: dict[str, dict[str, Any]] = {}
        for channel, kind in kinds.items():
            units = [
                (readers[r.name].folder / channel, _unit_keep(keep, readers[r.name], kind.unit))
                for r, keep in zip(sources, keeps, strict=True)
            ]
            if isinstance(kind, MergeableKind):  # from the stored form
                parts[channel] = kind.merge_parts(units, folder / channel, bulk)
            else:
                writer = kind.part_writer(folder / channel, BuildJob(bulk=bulk))
                merged = SegmentStore(folder)
                try:
                    for docs, spans in _segment_batches(merged, range(rows), batch_size):
                        writer.add(unit_texts(docs, spans, kind.unit), docs)
                finally:
                    merged.close()
                parts[channel] = writer.finish()
            # documents over the token limit when written, counted as they were (deleted ones too)
            truncated = sum(int(r.parts.get(channel, {}).get("truncated", 0)) for r in sources)
            if truncated:
                parts[channel]["truncated"] = truncated
        _fsync_tree(folder)
    except BaseException:
        store.abort()
        remove_folder(folder)
        raise
    merged_record = _record(folder, current.next_row, current.next_passage, rows, passages, parts)
    return current.evolve(
        segments=(*kept, merged_record),
        next_row=current.next_row + rows,
        next_passage=current.next_passage + passages,
        next_segment=current.next_segment + 1,
    )


def _unit_keep(keep: BoolArray, reader: SegmentReader, unit: str) -> BoolArray:
    if unit == "document":
        return keep
    mask: BoolArray = keep[reader.store.passage_rows]
    return mask


def channel_records(
    kinds: Mapping[str, ChannelKind], factories: Mapping[str, str]
) -> dict[str, ChannelRecord]:
    """Manifest records of resolved kinds (``factories``: channel name -> registry kind)."""
    return {name: ChannelRecord(factories[name], kind.settings()) for name, kind in kinds.items()}


def chunker_for(kinds: Mapping[str, ChannelKind], chunking: ChunkConfig | None) -> Chunker | None:
    """A chunker measuring passages in the tokens of the first passage channel with an encoder."""
    if chunking is None:
        return None
    for kind in kinds.values():
        if kind.unit == "passage" and isinstance(kind, TokenizingKind):
            return Chunker(kind.tokenizer, chunking)
    raise DensaError("chunking measures passages in an encoder's tokens: add a dense channel")
