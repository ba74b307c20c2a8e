"""A read-only snapshot: one generation's segments, channels and documents, under a lease.

Global ids: the documents of all segments are numbered by *row id* (``rid``), the
passages by *passage id* (``pid``); each segment owns the ranges starting at its
``first_row`` / ``first_passage``. Ids are valid within one snapshot (a merge renumbers).
Everything :mod:`densa.search` needs is here: channels to search, masks for deletes and
filters, passage -> document mapping on arrays, and documents fetched in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from densa.errors import DensaError
from densa.index.channels.base import BoolArray, Channel, ChannelKind, IdArray, SegmentView
from densa.index.leases import Lease
from densa.index.manifest import SEGMENTS_DIR, Manifest, SegmentRecord
from densa.index.segments import SegmentReader
from densa.index.store import Filter, SegmentStore
from densa.types import Document

__all__ = ["Snapshot"]

T = TypeVar("T")


class Snapshot:
    """One generation of an index, opened for reading (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        lease: Lease | None,
        kinds: Mapping[str, ChannelKind],
        readers: Mapping[str, SegmentReader] | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._lease = lease
        self.kinds = dict(kinds)
        shared = readers or {}
        opened: list[SegmentReader] = []
        try:
            for record in manifest.segments:
                reader = shared.get(record.name)
                if reader is None or reader.references <= 0:  # not shared, or closed since
                    reader = SegmentReader(path / SEGMENTS_DIR / record.name, record)
                reader.references += 1
                opened.append(reader)
        except BaseException:
            self._release(opened)
            raise
        self.readers: dict[str, SegmentReader] = {r.name: r for r in opened}
        self.records: tuple[SegmentRecord, ...] = manifest.segments
        self.views: list[SegmentView] = [r.view(s) for r, s in zip(opened, self.records, strict=True)]
        self._first_rows = np.asarray([s.first_row for s in self.records], dtype=np.int64)
        self._first_passages = np.asarray([s.first_passage for s in self.records], dtype=np.int64)
        self._channels: dict[str, Channel] = {}
        self._closed = False

    # ----------------------------------------------------------------- channels
    def channel(self, name: str) -> Channel:
        """The searcher of channel ``name`` over this snapshot (opened on first use)."""
        if name not in self._channels:
            if name not in self.kinds:
                raise DensaError(f"no channel {name!r} in {self.path} (channels: {', '.join(self.kinds)})")
            self._channels[name] = self.kinds[name].open(self.views, name)
        return self._channels[name]

    # -------------------------------------------------------------------- masks
    def allowed(self, filter: Filter | None = None) -> list[BoolArray | None]:
        """Per segment, the rows a search may return: live, and matching ``filter`` if given
        (``None``: every row of that segment)."""
        masks: list[BoolArray | None] = []
        for view, reader in zip(self.views, self.readers.values(), strict=True):
            if not filter:
                masks.append(view.live)
                continue
            mask = np.zeros(view.rows, dtype=bool)
            mask[reader.store.matching(filter)] = True
            masks.append(mask if view.live is None else mask & view.live)
        return masks

    # ----------------------------------------------------------------- id maps
    def _segment_of(self, ids: npt.ArrayLike, firsts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.searchsorted(firsts, np.asarray(ids, dtype=np.int64), side="right") - 1

    def passage_documents(self, pids: IdArray) -> IdArray:
        """The row id of each passage id (vectorised)."""
        pids = np.asarray(pids, dtype=np.int64)
        out = np.empty(len(pids), dtype=np.int64)
        segment = self._segment_of(pids, self._first_passages)
        for s in np.unique(segment):
            at = segment == s
            view = self.views[int(s)]
            out[at] = view.passage_rows[pids[at] - view.first_passage] + view.first_row
        return out

    def _by_segment(self, rids: Iterable[int]) -> dict[int, list[int]]:
        unique = np.unique(np.fromiter(rids, dtype=np.int64))
        groups: dict[int, list[int]] = {}
        for rid, s in zip(unique.tolist(), self._segment_of(unique, self._first_rows).tolist(), strict=True):
            groups.setdefault(s, []).append(rid - int(self._first_rows[s]))
        return groups

    def documents(self, rids: Iterable[int]) -> dict[int, Document]:
        """The documents of ``rids``: one store call (one query per segment holding some)."""
        return self._fetch(rids, SegmentStore.get_many)

    def doc_ids(self, rids: Iterable[int]) -> dict[int, str]:
        """``row id -> document id`` for ``rids`` (one store call)."""
        return self._fetch(rids, SegmentStore.ids_of)

    def _fetch(
        self, rids: Iterable[int], get: Callable[[SegmentStore, list[int]], dict[int, T]]
    ) -> dict[int, T]:
        """``get`` from each segment's store for its local rows, keyed back by row id."""
        out: dict[int, T] = {}
        for s, rows in self._by_segment(rids).items():
            first = int(self._first_rows[s])
            out.update({first + r: value for r, value in get(self._reader(s).store, rows).items()})
        return out

    def passage_spans(self, pids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
        """``pid -> (rid, start, end)``: where each passage sits in its document's text."""
        out: dict[int, tuple[int, int, int]] = {}
        array = np.asarray(pids, dtype=np.int64)
        for pid, s in zip(
            array.tolist(), self._segment_of(array, self._first_passages).tolist(), strict=True
        ):
            view, reader = self.views[s], self._reader(s)
            row, start, end = (int(x) for x in reader.store.passages[pid - view.first_passage])
            out[pid] = (row + view.first_row, start, end)
        return out

    def _reader(self, s: int) -> SegmentReader:
        return self.readers[self.records[s].name]

    def locate(self, ids: Sequence[str]) -> dict[str, int]:
        """``document id -> row id`` of the live documents among ``ids``."""
        out: dict[str, int] = {}
        for view, reader in zip(self.views, self.readers.values(), strict=True):
            for doc_id, row in reader.store.rows_of(ids).items():
                if view.live is None or view.live[row]:
                    out[doc_id] = view.first_row + row
        return out

    def get(self, doc_id: str) -> Document | None:
        """The live document with this id, or ``None``."""
        rid = self.locate([doc_id]).get(doc_id)
        return None if rid is None else self.documents([rid])[rid]

    def iter_documents(self) -> Iterator[tuple[int, Document]]:
        """Every live ``(row id, document)``, segment by segment."""
        for view, reader in zip(self.views, self.readers.values(), strict=True):
            for row, doc in reader.store.iter_documents():
                if view.live is None or view.live[row]:
                    yield view.first_row + row, doc

    def first_texts(self, n: int) -> list[str]:
        """The first ``n`` live documents' texts (e.g. to calibrate a quantised encoder)."""
        return [doc.full_text for _, doc in islice(self.iter_documents(), n)]

    # ----------------------------------------------------------------- lifecycle
    @staticmethod
    def _release(readers: Iterable[SegmentReader]) -> None:
        for reader in readers:
            reader.references -= 1
            if reader.references == 0:
                reader.close()

    def close(self) -> None:
        """Release the segments (closed when no other snapshot uses them) and the lease."""
        if self._closed:
            return
        self._closed = True
        self._channels.clear()
        self._release(self.readers.values())
        if self._lease is not None:
            self._lease.release()
