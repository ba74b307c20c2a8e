"""The channel protocols: what one retrieval method implements to live in a densa index.

An index holds one document store and any number of named *channels*. A channel is a
representation (how texts become something searchable: dense vectors, BM25 terms, ...)
plus a backend (where that is kept and searched: a FAISS kind, postings arrays, ...).
Like a Lucene index, the index is a list of immutable *segments*; every segment holds
one *part* of every channel, written once by a :class:`PartWriter`. At search time a
:class:`Channel` fans out over the parts of one snapshot and returns the best *units*
(documents, or passages when the index splits documents) by global id.

A new kind of channel is one module that implements :class:`ChannelKind` (and the
writer and searcher it hands out) plus one call to
:func:`densa.index.channels.registry.register`; nothing else in densa changes.

The pieces, from the manifest to a search:

* a *config* (any object with a ``kind`` attribute) is what a user asks for;
* :meth:`ChannelFactory.from_config` resolves it (e.g. loads the model) into a
  :class:`ChannelKind`, whose :meth:`~ChannelKind.settings` go into the manifest;
* :meth:`ChannelFactory.from_settings` rebuilds the same kind from the manifest;
* :meth:`ChannelKind.part_writer` writes one segment's part;
* :meth:`ChannelKind.open` returns the :class:`Channel` that searches one snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from densa.encode.config import Backend
from densa.encode.encoder import Encoder
from densa.index.store import Filter
from densa.types import Document

__all__ = [
    "BoolArray",
    "BuildJob",
    "Channel",
    "ChannelFactory",
    "ChannelKind",
    "IdArray",
    "MergeableKind",
    "OpenOptions",
    "PartWriter",
    "ScoreArray",
    "SegmentView",
    "TokenizingKind",
    "Unit",
    "UnitScores",
    "check_fingerprint",
    "has_model",
    "load_part_files",
    "load_parts",
    "merge_segment_results",
    "save_part_files",
    "top_k_with_ties",
]

#: What a channel scores: whole documents, or the passages the index split them into.
Unit = Literal["document", "passage"]

BoolArray = npt.NDArray[np.bool_]
IdArray = npt.NDArray[np.int64]
ScoreArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class UnitScores:
    """One query's best units: global ids and scores, best first (ties at the cut kept)."""

    ids: IdArray
    scores: ScoreArray

    @classmethod
    def empty(cls) -> UnitScores:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.ids)


def top_k_with_ties(ids: IdArray, scores: ScoreArray, k: int) -> UnitScores:
    """The ``k`` best of ``(ids, scores)``, plus any that tie with the ``k``-th, best first.

    Keeping ties makes a cut independent of how ids were numbered, so an index built by
    updates ranks exactly as a fresh build of the same documents (ties are broken later,
    by document id, as trec_eval does).

    Examples
    --------
    >>> top = top_k_with_ties(np.array([5, 6, 7, 8]), np.array([0.25, 0.75, 0.5, 0.5], np.float32), 2)
    >>> top.ids.tolist(), top.scores.tolist()
    ([6, 7, 8], [0.75, 0.5, 0.5])
    """
    if k < 1 or not len(ids):
        return UnitScores.empty()
    if len(ids) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))
    return UnitScores(np.asarray(ids[order], np.int64), np.asarray(scores[order], np.float32))


def merge_segment_results(
    found: Sequence[tuple[int, Sequence[tuple[IdArray, ScoreArray]]]], queries: int, k: int
) -> list[UnitScores]:
    """Every query's ``k`` best over all segments, from ``(first global id, per query (local
    ids, scores))`` of each segment."""
    results = []
    for q in range(queries):
        ids = [rows[q][0] + first for first, rows in found]
        scores = [rows[q][1] for _, rows in found]
        results.append(
            top_k_with_ties(np.concatenate(ids), np.concatenate(scores), k) if ids else UnitScores.empty()
        )
    return results


def check_fingerprint(channel: str, model: str, built: str, found: str) -> None:
    """Refuse a model folder that no longer holds the model a channel was built with."""
    from densa.errors import IndexMismatchError

    if built != found:
        raise IndexMismatchError(
            f"this index's {channel} channel was built with {model!r} (fingerprint {built}); "
            f"that folder now holds another model ({found})"
        )


@dataclass
class SegmentView:
    """One segment as a channel sees it in one snapshot.

    Parameters
    ----------
    name
        The segment's folder name, e.g. ``seg-000003``.
    folder
        The segment folder; a channel's part lives in ``folder / channel_name``.
    first_row, first_passage
        Global ids of the segment's local document row 0 and local passage 0.
    rows, passages
        Documents and passages the segment was written with (deleted ones included).
    live
        Which local document rows are not deleted (``None``: all are live).
    passage_rows
        The local document row of every local passage, shape ``(passages,)``.
    deletes
        The name of the tombstone file behind ``live`` (``None``: no deletes); with the
        segment's name it identifies ``live``, e.g. as a cache key.
    """

    name: str
    folder: Path
    first_row: int
    first_passage: int
    rows: int
    passages: int
    live: BoolArray | None
    passage_rows: npt.NDArray[np.int32]
    deletes: str | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def first(self, unit: Unit) -> int:
        return self.first_passage if unit == "passage" else self.first_row

    def count(self, unit: Unit) -> int:
        return self.passages if unit == "passage" else self.rows

    def unit_mask(self, rows: BoolArray | None, unit: Unit) -> BoolArray | None:
        """A mask over document rows turned into one over ``unit`` (passages inherit their
        document's value)."""
        if rows is None or unit == "document":
            return rows
        mask: BoolArray = rows[self.passage_rows]
        return mask

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per segment reader (parts and other immutable data)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def load_parts(
    segments: Sequence[SegmentView], name: str, load: Callable[[Path], Any], what: str
) -> list[Any]:
    """Each segment's part of channel ``name`` (loaded once per segment reader), checked to
    hold one entry per passage (``what`` names the entries in the error)."""
    from densa.errors import IndexDamagedError

    parts = [view.cached(f"{name}:part", partial(load, view.folder / name)) for view in segments]
    for view, part in zip(segments, parts, strict=True):
        if len(part) != view.passages:
            raise IndexDamagedError(
                f"{view.folder / name}: {len(part)} {what} for the segment's {view.passages} passages"
            )
    return parts


def save_part_files(
    folder: Path, arrays: Mapping[str, npt.NDArray[Any]], record_name: str, record: Mapping[str, Any]
) -> int:
    """Write a part as ``NAME.npy`` per array (no pickle) plus a JSON record; the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, array in arrays.items():
        with (folder / f"{name}.npy").open("wb") as f:
            np.save(f, array, allow_pickle=False)
        written += (folder / f"{name}.npy").stat().st_size
    (folder / record_name).write_text(json.dumps(dict(record)) + "\n", encoding="utf-8")
    return written + (folder / record_name).stat().st_size


def load_part_files(
    folder: Path, names: Sequence[str], record_name: str, what: str, *, mmap: bool = True
) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The record and arrays :func:`save_part_files` wrote (memory-mapped by default); a missing
    or unreadable file is :class:`~densa.errors.IndexDamagedError` naming ``what``."""
    from densa.errors import IndexDamagedError

    try:
        record = json.loads((folder / record_name).read_text(encoding="utf-8"))
        # mapped files as plain ndarray views: numpy.memmap's Python-level __getitem__ is slow
        arrays = {
            name: np.asarray(
                np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
            )
            for name in names
        }
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(f"{folder}: {what} not readable ({exc})") from exc
    return record, arrays


@dataclass(frozen=True)
class BuildJob:
    """What a part writer may use while writing one segment.

    Parameters
    ----------
    progress
        Called with the number of units finished (for a progress bar).
    resume_dir, signature
        A folder for resumable work that survives a killed build (e.g. encoded shards), and
        what must match for that work to be reused (model, chunking, batch size).
    runner
        Where to encode (a :class:`densa.index.encoding.BatchRunner`, e.g. Dask workers).
    bulk
        ``True`` for a build or a full merge, ``False`` for an update's small segment.
    """

    progress: Callable[[int], object] | None = None
    resume_dir: Path | None = None
    signature: dict[str, Any] = field(default_factory=dict)
    runner: Any = None
    bulk: bool = True


@dataclass(frozen=True)
class OpenOptions:
    """How to load a channel's model when an index is opened (kinds ignore what they do not use).

    ``encoder`` replaces the loaded model (it must be the same one); ``model`` loads it from
    another folder (moved); ``backend`` encodes queries on another runtime (``auto``: the
    fastest that keeps quality, see :func:`densa.index.channels.dense.query_backend`; ``None``:
    the index's own); ``calibration`` returns stored passages for a runtime that needs them
    (``openvino-int8``).
    """

    encoder: Encoder | None = None
    model: str | None = None
    device: str | None = None
    batch_size: int = 32
    backend: Backend | Literal["auto"] | None = None
    calibration: Callable[[], Sequence[str]] | None = None


class PartWriter(Protocol):
    """Writes one segment's part of a channel, unit by unit, local ids 0, 1, 2, ... in order."""

    def add(self, texts: Sequence[str], documents: Sequence[Document]) -> None:
        """Add the next units (``texts``: one per unit) of the batch ``documents``."""
        ...

    def finish(self) -> dict[str, Any]:
        """Write everything to the part folder; returns statistics for the manifest (at
        least ``bytes``)."""
        ...


@runtime_checkable
class Channel(Protocol):
    """One channel of one snapshot: encode queries once, search every segment, merge."""

    def encode_queries(self, texts: Sequence[str]) -> Any:
        """The channel's query representation of ``texts`` (vectors, terms, ...)."""
        ...

    def search(
        self, queries: Any, k: int, allowed: Sequence[BoolArray | None], where: Filter | None = None
    ) -> list[UnitScores]:
        """The ``k`` best units of every query, by global id.

        ``allowed`` holds one mask over document rows per segment (deleted documents and
        those a filter rejects are ``False``; ``None``: all allowed). ``where`` is the filter
        the masks were made from, for a channel whose backend can apply it itself (an engine);
        the others need only the masks. Units that do not match at all (a BM25 score of 0)
        are left out rather than padded.
        """
        ...


class ChannelKind(Protocol):
    """A resolved channel: its settings, how to write a part, how to search a snapshot."""

    unit: Unit

    def settings(self) -> dict[str, Any]:
        """The full settings, saved in the manifest; :meth:`ChannelFactory.from_settings`
        rebuilds the same kind from them."""
        ...

    def part_writer(self, folder: Path, job: BuildJob) -> PartWriter: ...

    def open(self, segments: Sequence[SegmentView], name: str) -> Channel:
        """The searcher over ``segments`` (one snapshot); parts are in ``segment.folder / name``."""
        ...


@runtime_checkable
class MergeableKind(Protocol):
    """A kind that merges parts from their stored form (no re-encoding). Kinds without it are
    merged by writing a new part from the kept units' texts."""

    def merge_parts(
        self, sources: Sequence[tuple[Path, BoolArray]], folder: Path, bulk: bool
    ) -> dict[str, Any]:
        """Write into ``folder`` one part holding, in order, the units each ``(part folder,
        keep mask over its units)`` keeps; returns the statistics :meth:`PartWriter.finish` would.
        ``bulk`` as in :class:`BuildJob`."""
        ...


@runtime_checkable
class TokenizingKind(Protocol):
    """A kind whose model has a tokenizer: the index measures chunks in its tokens."""

    @property
    def tokenizer(self) -> Any: ...


def has_model(kind: ChannelKind) -> bool:
    """Whether ``kind`` runs a model on queries (a :class:`TokenizingKind`), told from its class:
    ``isinstance(kind, TokenizingKind)`` would read ``kind.tokenizer``, loading the model (or,
    on a server, copying a tokenizer for the calling thread)."""
    return hasattr(type(kind), "tokenizer")


class ChannelFactory(Protocol):
    """A registry entry: turns a user's config or a manifest record into a :class:`ChannelKind`."""

    def from_config(self, config: Any, sample: Callable[[], Sequence[str]]) -> ChannelKind:
        """Resolve a user's config; ``sample()`` returns the first documents' texts of the corpus
        being indexed (e.g. to calibrate a quantised model), possibly none; call it only if needed."""
        ...

    def from_settings(self, settings: dict[str, Any], options: OpenOptions) -> ChannelKind: ...
