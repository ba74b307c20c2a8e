"""A dense channel's vectors in an external vector engine instead of a FAISS file.

Every segment's part of such a channel is one collection of the engine (named
``densa_<random>``, point id = the segment's local passage number); the part folder holds only
``external.json``, which names the engine and the collection. The rest of densa is unchanged:
segments stay immutable (a collection is written once, before the manifest that lists it is
committed, so the manifest is the commit token: a failed or killed write leaves a collection
that no manifest names, dropped by the next garbage collection); deletes are densa's tombstones,
pushed into the engine as point-id filters; metadata filters run in the engine on the points'
payload (their documents' metadata, :mod:`.payload`), or as point-id filters where the
payload cannot answer them exactly; merges read the kept vectors back from the engine
and write a new collection; the document store, BM25 and every other channel stay in the index
folder.

An engine is named by a location string (:meth:`EngineLocation.parse`):

* ``qdrant`` / ``milvus``: embedded (Qdrant local mode, milvus-lite), stored in
  ``INDEX/engines/<name>/``. Embedded engines serve one process at a time.
* ``qdrant+http://host:6333`` / ``milvus://host:19530`` (or ``milvus+https://...``): a server.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from densa.errors import ConfigError, EngineError, IndexDamagedError
from densa.index.engines.payload import Value, engine_filter, segment_payloads
from densa.index.manifest import SEGMENTS_DIR
from densa.index.store import Filter
from densa.index.vectors import VectorIndexConfig

__all__ = [
    "ENGINES_DIR",
    "EXTERNAL",
    "EngineLocation",
    "EnginePart",
    "VectorEngine",
    "close_all",
    "connect",
    "drop_orphans",
    "remove_folder",
    "write_engine_part",
]

EXTERNAL = "external.json"  # in a part folder: the part's vectors live in an engine
ENGINES_DIR = "engines"  # in an index folder: the embedded engines' storage
ORPHANS = "orphans.json"  # in ENGINES_DIR: collections a removal could not drop yet
_BATCH = 1024  # points a call when writing or reading vectors back
_LOG = logging.getLogger("densa.index")

Vectors = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EngineLocation:
    """Which engine, and where: ``server`` is ``None`` for the embedded one.

    Examples
    --------
    >>> EngineLocation.parse("qdrant+http://localhost:6333")
    EngineLocation(name='qdrant', server='http://localhost:6333')
    >>> str(EngineLocation.parse("milvus"))
    'milvus'
    """

    name: str
    server: str | None = None

    @classmethod
    def parse(cls, text: str) -> EngineLocation:
        text = text.strip()
        name, _, rest = text.partition("+")
        if not rest and "://" in text:  # milvus://host:port
            name, _, address = text.partition("://")
            rest = f"http://{address}"
        if name not in _ENGINES:
            raise ConfigError(
                f"unknown engine {text!r}: use one of {sorted(_ENGINES)}, embedded, or NAME+URL "
                "of a server (e.g. qdrant+http://localhost:6333, milvus://localhost:19530)"
            )
        if rest and not rest.startswith(("http://", "https://")):
            raise ConfigError(f"engine {text!r}: the server must be an http(s):// URL")
        return cls(name, rest or None)

    def __str__(self) -> str:
        return self.name if self.server is None else f"{self.name}+{self.server}"

    def storage(self, index_dir: Path) -> Path:
        """The embedded engine's folder inside ``index_dir``."""
        return index_dir / ENGINES_DIR / self.name


class VectorEngine(Protocol):
    """What densa needs from an engine: one collection per part, points ``0 .. n-1``."""

    def create(self, collection: str, dim: int, config: VectorIndexConfig, rows: int, payload: bool) -> None:
        """A new empty collection for ``rows`` vectors, indexed as ``config.kind`` asks (inner
        product); with ``payload``, its points carry payload (:mod:`.payload`)."""
        ...

    def insert(
        self, collection: str, first: int, vectors: Vectors, payloads: Sequence[Mapping[str, Value]] | None
    ) -> None:
        """Points ``first .. first + len(vectors) - 1`` (with their payloads); durable when this
        returns."""
        ...

    def seal(self, collection: str) -> None:
        """Every vector is written: make the collection read-optimised (Milvus: flush it into
        sealed, indexed segments; searching unflushed growing segments is ~10x slower)."""
        ...

    def count(self, collection: str) -> int: ...

    def search(
        self,
        collection: str,
        queries: Vectors,
        k: int,
        ids: Rows | None,
        exclude: bool,
        config: VectorIndexConfig,
        where: Mapping[str, Value] | None = None,
    ) -> tuple[Vectors, Rows]:
        """Top-``k`` ``(scores, ids)`` per query, padded with ``-1``; ``ids`` (if given) are the
        only points allowed, or with ``exclude`` the points not allowed; ``where`` (if given):
        only points whose payload has every ``key == value``."""
        ...

    def vectors(self, collection: str, ids: Rows) -> Vectors:
        """The stored vectors of ``ids``, in that order."""
        ...

    def drop(self, collection: str) -> None:
        """Remove the collection (no error if it is not there)."""
        ...

    def collections(self) -> list[str]: ...

    def close(self) -> None: ...


#: engine name -> the module of its client (imported on first use), and the kinds it builds
_ENGINES = {"qdrant": "densa.index.engines.qdrant", "milvus": "densa.index.engines.milvus"}
KINDS = {
    "qdrant": ("flat", "hnsw", "hnsw-sq8", "binary"),  # Qdrant has no IVF index
    "milvus": ("flat", "hnsw", "hnsw-sq8", "ivf-flat", "ivf-sq8", "ivf-pq"),  # binary: another field type
}


def in_order(found: dict[int, Any], ids: Rows, collection: str) -> Vectors:
    """The vectors ``found`` (point id -> vector) in the order of ``ids``; all must be there."""
    missing = [int(i) for i in ids if int(i) not in found]
    if missing:
        raise KeyError(f"points {missing[:5]} are not in collection {collection}")
    return np.asarray([found[int(i)] for i in ids], np.float32)


def check_kind(location: EngineLocation, kind: str) -> None:
    """Raise :class:`ConfigError` if the engine cannot build ``kind``."""
    if kind not in KINDS[location.name]:
        raise ConfigError(f"{location.name} has no {kind!r} index here: use one of {KINDS[location.name]}")


_CLIENTS: dict[tuple[str, str], VectorEngine] = {}
_CLIENTS_LOCK = threading.Lock()


def connect(location: EngineLocation, index_dir: Path) -> VectorEngine:
    """The process's client of ``location`` (embedded: for ``index_dir``), opened once."""
    import importlib

    key = (location.name, location.server or str(location.storage(index_dir).resolve()))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            module = importlib.import_module(_ENGINES[location.name])
            with failures(location, "connect"):
                if location.server is None:
                    location.storage(index_dir).mkdir(parents=True, exist_ok=True)
                _CLIENTS[key] = module.open_engine(location, location.storage(index_dir))
        return _CLIENTS[key]


def close_all() -> None:
    """Close every engine client this process opened (embedded engines release their files)."""
    with _CLIENTS_LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        client.close()


@contextmanager
def failures(location: EngineLocation, action: str) -> Iterator[None]:
    """Any error of the engine's client becomes an :class:`EngineError` naming the engine."""
    try:
        yield
    except (EngineError, ConfigError):
        raise
    except Exception as exc:  # the clients raise their own error types (gRPC, HTTP, RuntimeError)
        where = location.server or "embedded"
        raise EngineError(f"{location.name} ({where}): {action} failed: {exc}") from exc


def index_dir_of(part: Path) -> Path:
    """The index folder of a part folder ``INDEX/segments/seg-N/CHANNEL``."""
    if part.parent.parent.name != SEGMENTS_DIR:
        raise ValueError(f"{part} is not a part folder of an index")
    return part.parent.parent.parent


def write_engine_part(
    location: EngineLocation, vectors: Vectors, folder: Path, config: VectorIndexConfig
) -> int:
    """Write ``vectors`` (row i = local passage i) as a new collection of the engine and the
    part's ``external.json``; returns the bytes written to the folder. On failure the
    collection is dropped again and an :class:`EngineError` raised."""
    engine = connect(location, index_dir_of(folder))
    collection = f"densa_{uuid.uuid4().hex}"
    n, dim = vectors.shape
    payloads = segment_payloads(folder.parent, n)  # the segment's store is written before its parts
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "engine": str(location),
        "collection": collection,
        "rows": n,
        "dim": dim,
        "config": config.to_dict(),
    }
    if payloads is not None:
        meta["payload"] = {"partial": sorted(payloads.partial)}
    (folder / EXTERNAL).write_text(json.dumps(meta), encoding="utf-8")  # first: a kill leaves a trace
    try:
        with failures(location, f"writing collection {collection}"):
            engine.create(collection, dim, config, n, payloads is not None)
            for start in range(0, n, _BATCH):
                batch = np.ascontiguousarray(vectors[start : start + _BATCH])
                points = payloads.points[start : start + _BATCH] if payloads is not None else None
                engine.insert(collection, start, batch, points)
            engine.seal(collection)
            stored = engine.count(collection)
        if stored != n:
            raise EngineError(
                f"{location}: collection {collection} holds {stored} of the {n} vectors written"
            )
    except BaseException:
        with failures(location, f"dropping collection {collection}"):
            engine.drop(collection)
        raise
    return (folder / EXTERNAL).stat().st_size


_MARKER_ERRORS = (OSError, ValueError, KeyError, ConfigError)


def _read_marker(marker: Path) -> tuple[dict[str, Any], EngineLocation]:
    """A part's ``external.json`` and the engine it names; raises one of ``_MARKER_ERRORS``."""
    meta: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
    return meta, EngineLocation.parse(meta["engine"])


class EnginePart:
    """One segment's part in an engine, searched like a :class:`~densa.index.VectorIndex`."""

    def __init__(self, location: EngineLocation, engine: VectorEngine, meta: dict[str, Any]) -> None:
        self.location = location
        self.engine = engine
        self.collection: str = meta["collection"]
        self.config = VectorIndexConfig.from_dict(meta["config"])
        self._rows = int(meta["rows"])
        self.dim = int(meta["dim"])
        payload = meta.get("payload")  # parts written before payloads: filters as id lists
        self.partial: frozenset[str] | None = (
            frozenset(payload["partial"]) if isinstance(payload, dict) else None
        )

    @classmethod
    def load(cls, folder: Path) -> EnginePart:
        try:
            meta, location = _read_marker(folder / EXTERNAL)
        except _MARKER_ERRORS as exc:
            raise IndexDamagedError(f"{folder / EXTERNAL}: missing or damaged ({exc})") from None
        return cls(location, connect(location, index_dir_of(folder)), meta)

    def __len__(self) -> int:
        return self._rows

    def memory_bytes(self) -> int:
        """Bytes densa holds for this part (none: the engine holds the vectors)."""
        return 0

    def search(
        self,
        queries: Vectors,
        k: int,
        allowed: npt.NDArray[np.bool_] | None = None,
        where: Filter | None = None,
        live: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[Vectors, Rows]:
        """As :meth:`VectorIndex.search`. ``allowed`` (the points a search may return) goes to
        the engine as a point-id filter, the shorter of the allowed and the rejected ids;
        unless ``where``, the filter ``allowed`` was made from (with ``live``, the points not
        deleted), can run in the engine on the part's payload: then only the deleted ids go."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        empty = np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        n = self._rows
        if not n or not len(queries):
            return empty
        ids, exclude, pushed = None, False, None
        if allowed is not None:
            count = int(np.count_nonzero(allowed))
            if not count:
                return empty
            if where and self.partial is not None:
                pushed = engine_filter(where, self.partial)
            if pushed is not None:
                exclude = True
                if live is not None and not live.all():
                    ids = np.flatnonzero(~live).astype(np.int64)
            elif count < n:
                exclude = count > n - count
                ids = np.flatnonzero(~allowed if exclude else allowed).astype(np.int64)
            k = min(k, count)
        with failures(self.location, f"searching collection {self.collection}"):
            return self.engine.search(self.collection, queries, min(k, n), ids, exclude, self.config, pushed)

    def reconstruct(self, rows: Rows) -> Vectors:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.dim), np.float32)
        with failures(self.location, f"reading collection {self.collection}"):
            for start in range(0, len(rows), _BATCH):
                out[start : start + _BATCH] = self.engine.vectors(
                    self.collection, rows[start : start + _BATCH]
                )
        return out


def remove_folder(folder: Path) -> None:
    """Remove a segment folder or a part folder, after dropping the engine collections its
    parts name. The folder goes either way; a collection that could not be dropped (a server
    down) is written to the index's orphan list, and dropped by a later garbage collection
    (:func:`drop_orphans`)."""
    markers = [folder / EXTERNAL] if (folder / EXTERNAL).is_file() else sorted(folder.glob(f"*/{EXTERNAL}"))
    for marker in markers:
        try:
            meta, location = _read_marker(marker)
            index_dir = index_dir_of(marker.parent)
        except _MARKER_ERRORS as exc:
            _LOG.warning("%s: %s", marker, exc)
            continue
        try:
            engine = connect(location, index_dir)
            with failures(location, f"dropping collection {meta['collection']}"):
                engine.drop(meta["collection"])
        except EngineError as exc:
            _LOG.warning("%s: %s (kept in %s to drop later)", marker, exc, _orphans_file(index_dir))
            _write_orphans(index_dir, {**_read_orphans(index_dir), meta["collection"]: str(location)})
    shutil.rmtree(folder, ignore_errors=True)


def _orphans_file(index_dir: Path) -> Path:
    return index_dir / ENGINES_DIR / ORPHANS


def _read_orphans(index_dir: Path) -> dict[str, str]:
    """``collection -> engine location`` of the collections left to drop."""
    path = _orphans_file(index_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _LOG.warning("%s: unreadable, ignored (%s)", path, exc)
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_orphans(index_dir: Path, orphans: dict[str, str]) -> None:
    path = _orphans_file(index_dir)
    if not orphans:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(orphans, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def drop_orphans(index_dir: Path, referenced: set[str]) -> None:
    """Drop the collections on the orphan list (servers or embedded) that no part names; those
    whose engine still fails stay on the list."""
    left: dict[str, str] = {}
    for collection, where in _read_orphans(index_dir).items():
        if collection in referenced:
            continue
        try:
            location = EngineLocation.parse(where)
            with failures(location, f"dropping collection {collection}"):
                connect(location, index_dir).drop(collection)
        except (EngineError, ConfigError) as exc:
            _LOG.warning("%s: %s", _orphans_file(index_dir), exc)
            left[collection] = where
    _write_orphans(index_dir, left)


def sweep_embedded(index_dir: Path, referenced: set[str]) -> None:
    """Drop the collections of the index's embedded engines that no part folder names (left by
    a killed writer). Only for embedded engines: a server's collections may belong to others."""
    root = index_dir / ENGINES_DIR
    if not root.is_dir():
        return
    for storage in sorted(p for p in root.iterdir() if p.is_dir() and p.name in _ENGINES):
        location = EngineLocation(storage.name)
        engine = connect(location, index_dir)
        with failures(location, "listing collections"):
            for name in engine.collections():
                if name.startswith("densa_") and name not in referenced:
                    engine.drop(name)


def referenced_collections(index_dir: Path) -> set[str]:
    """The collections named by the part folders under ``index_dir/segments``."""
    out = set()
    for marker in (index_dir / SEGMENTS_DIR).glob(f"*/*/{EXTERNAL}"):
        try:  # a marker naming an engine densa does not know still keeps its collection
            out.add(json.loads(marker.read_text(encoding="utf-8"))["collection"])
        except (OSError, ValueError, KeyError):
            continue
    return out
