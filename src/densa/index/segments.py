"""Opening segments: a :class:`SegmentReader` per segment folder, shared by every snapshot that
lists it (a new snapshot after an update opens only the new segments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from densa.errors import IndexDamagedError
from densa.index.channels.base import BoolArray, SegmentView
from densa.index.manifest import SegmentRecord
from densa.index.store import SegmentStore

__all__ = ["SegmentReader", "read_tombstones"]


def read_tombstones(path: Path, rows: int) -> np.ndarray:
    """The deleted local rows in a tombstone file (sorted, unique, in ``0 .. rows-1``)."""
    try:
        deleted = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(f"{path}: tombstone file missing or damaged ({exc})") from None
    if deleted.ndim != 1 or (len(deleted) and (deleted.min() < 0 or deleted.max() >= rows)):
        raise IndexDamagedError(f"{path}: tombstones outside the segment's {rows} rows (damaged)")
    return np.unique(deleted.astype(np.int64))


class SegmentReader:
    """One open segment: its document store, passage table, and every channel part opened so far."""

    def __init__(self, folder: Path, record: SegmentRecord) -> None:
        self.folder = folder
        self.name = record.name
        if not folder.is_dir():
            raise IndexDamagedError(f"{folder}: segment folder missing (damaged index)")
        self.store = SegmentStore(folder)
        if len(self.store) != record.rows or len(self.store.passages) != record.passages:
            self.store.close()
            raise IndexDamagedError(
                f"{folder}: {len(self.store)} documents and {len(self.store.passages)} passages, "
                f"the manifest says {record.rows} and {record.passages} (damaged index)"
            )
        self.rows = record.rows
        self.passages = record.passages
        self._cache: dict[str, Any] = {}
        self._live: dict[str, BoolArray] = {}
        self.references = 0

    def live(self, record: SegmentRecord) -> BoolArray | None:
        """Which rows are live under ``record``'s tombstones (``None``: all)."""
        if record.deletes is None:
            return None
        if record.deletes not in self._live:
            mask = np.ones(self.rows, dtype=bool)
            deleted = read_tombstones(self.folder / record.deletes, self.rows)
            if len(deleted) != record.deleted:
                raise IndexDamagedError(
                    f"{self.folder / record.deletes}: {len(deleted)} tombstones, manifest {record.deleted}"
                )
            mask[deleted] = False
            self._live = {record.deletes: mask}  # older tombstone files are not needed again
        return self._live[record.deletes]

    def view(self, record: SegmentRecord) -> SegmentView:
        return SegmentView(
            name=record.name,
            folder=self.folder,
            first_row=record.first_row,
            first_passage=record.first_passage,
            rows=record.rows,
            passages=record.passages,
            live=self.live(record),
            passage_rows=self.store.passage_rows,
            deletes=record.deletes,
            _cache=self._cache,
        )

    def close(self) -> None:
        self.store.close()
        self._cache.clear()
