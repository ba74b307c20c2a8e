"""One segment's documents: ids, titles, texts and JSON metadata in SQLite, passage spans in NumPy.

Each document of a segment has a local row (0, 1, 2, ... in the order it was written);
each of its passages (one, or several when long documents are chunked) a local passage id
and the character span it covers. ``docs.sqlite`` holds the documents; ``passages.npy``
holds ``(row, start, end)`` per passage, so mapping a passage hit to its document is an
array lookup, not a query. A segment is written once and then only read.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.errors import ConfigError, IndexDamagedError, InputError
from densa.types import Document

__all__ = ["DOCS_FILE", "PASSAGES_FILE", "Filter", "SegmentStore", "StoreWriter", "parse_filter"]

DOCS_FILE = "docs.sqlite"
PASSAGES_FILE = "passages.npy"

_SCHEMA = """
CREATE TABLE documents (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
"""

Filter = Mapping[str, Any]
_CHUNK = 500  # SQLite host parameters per query


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class StoreWriter:
    """Writes a new segment's documents and passage spans."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / DOCS_FILE)
        self._db.executescript(_SCHEMA)
        self._rows = 0
        self._passages: list[npt.NDArray[np.int64]] = []

    @property
    def rows(self) -> int:
        return self._rows

    def add(self, documents: Sequence[Document], spans: Sequence[Sequence[tuple[int, int]]]) -> list[int]:
        """Store documents with their passage spans; returns their local rows.

        Raises
        ------
        InputError
            A document id given twice within this segment.
        """
        rows = list(range(self._rows, self._rows + len(documents)))
        try:
            self._db.executemany(
                "INSERT INTO documents (row, id, title, text, metadata) VALUES (?, ?, ?, ?, ?)",
                [
                    (row, d.id, d.title, d.text, json.dumps(dict(d.metadata), ensure_ascii=False))
                    for row, d in zip(rows, documents, strict=True)
                ],
            )
        except sqlite3.IntegrityError:
            self._db.rollback()
            counts = Counter(d.id for d in documents)
            dupes = {i for i, n in counts.items() if n > 1}
            for part in _chunks(list(counts)):
                query = f"SELECT id FROM documents WHERE id IN ({_marks(len(part))})"
                dupes.update(r[0] for r in self._db.execute(query, part))
            raise InputError("documents", None, f"document id(s) given twice: {sorted(dupes)[:5]}") from None
        self._rows += len(documents)
        self._passages += [
            np.asarray([(row, a, b) for a, b in doc_spans], dtype=np.int64).reshape(-1, 3)
            for row, doc_spans in zip(rows, spans, strict=True)
        ]
        return rows

    def finish(self) -> int:
        """Commit and close; returns the number of passages."""
        self._db.commit()
        self._db.close()
        passages = np.concatenate(self._passages) if self._passages else np.zeros((0, 3), np.int64)
        np.save(self.folder / PASSAGES_FILE, passages, allow_pickle=False)
        return len(passages)

    def abort(self) -> None:
        self._db.close()


class SegmentStore:
    """Read-only access to one segment's documents and passages."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        path = folder / DOCS_FILE
        if not path.is_file():
            raise IndexDamagedError(f"{path}: document store missing")
        try:
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            self._rows = int(self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
            passages = np.asarray(np.load(folder / PASSAGES_FILE, mmap_mode="r", allow_pickle=False))
        except (sqlite3.DatabaseError, OSError, ValueError) as exc:
            raise IndexDamagedError(f"{folder}: document store damaged ({exc})") from None
        if passages.ndim != 2 or passages.shape[1] != 3:
            raise IndexDamagedError(f"{folder / PASSAGES_FILE}: not a passage table (damaged)")
        self.passages = passages
        self.passage_rows: npt.NDArray[np.int32] = np.asarray(passages[:, 0], dtype=np.int32)

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._rows

    def get_many(self, rows: Iterable[int]) -> dict[int, Document]:
        out: dict[int, Document] = {}
        for part in _chunks(sorted(set(rows))):
            query = f"SELECT row, id, title, text, metadata FROM documents WHERE row IN ({_marks(len(part))})"
            for row, doc_id, title, text, meta in self._db.execute(query, part):
                out[int(row)] = Document(id=doc_id, text=text, title=title, metadata=json.loads(meta))
        return out

    def ids_of(self, rows: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for part in _chunks(sorted(set(rows))):
            query = f"SELECT row, id FROM documents WHERE row IN ({_marks(len(part))})"
            out.update({int(r): i for r, i in self._db.execute(query, part)})
        return out

    def rows_of(self, ids: Iterable[str]) -> dict[str, int]:
        """``document id -> local row`` for the given ids found here (deleted ones included)."""
        out: dict[str, int] = {}
        for part in _chunks(list(ids)):
            query = f"SELECT id, row FROM documents WHERE id IN ({_marks(len(part))})"
            out.update({i: int(r) for i, r in self._db.execute(query, part)})
        return out

    def matching(self, where: Filter) -> npt.NDArray[np.int64]:
        """Rows whose metadata has every ``field == value`` of ``where``."""
        clauses = " AND ".join("json_extract(metadata, ?) = ?" for _ in where)
        params: list[Any] = []
        for name, value in where.items():
            params += ['$."' + name.replace('"', '""') + '"', _sql_value(value)]
        rows = self._db.execute(f"SELECT row FROM documents WHERE {clauses}", params)
        return np.fromiter((int(r[0]) for r in rows), dtype=np.int64)

    def iter_documents(self, rows: Sequence[int] | None = None) -> Iterator[tuple[int, Document]]:
        """``(row, document)`` in row order: all of them, or the given rows."""
        if rows is None:
            cursor = self._db.execute("SELECT row, id, title, text, metadata FROM documents ORDER BY row")
            for row, doc_id, title, text, meta in cursor:
                yield int(row), Document(id=doc_id, text=text, title=title, metadata=json.loads(meta))
            return
        for part in _chunks(sorted(rows)):
            found = self.get_many(part)
            yield from ((r, found[r]) for r in part)


def _sql_value(value: Any) -> Any:
    """Python value -> what SQLite's ``json_extract`` returns for it."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def parse_filter(expressions: Sequence[str]) -> Filter:
    """``["field=value", ...]`` -> ``{field: value}``; values that parse as JSON (numbers,
    ``true``, ``null``) are taken as such, anything else as a string.

    Examples
    --------
    >>> parse_filter(["topic=medical", "year=2020"])
    {'topic': 'medical', 'year': 2020}
    """
    out: dict[str, Any] = {}
    for expr in expressions:
        name, sep, raw = expr.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"filter {expr!r} is not of the form field=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[name.strip()] = value
    return out
