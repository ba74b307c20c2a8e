"""The document store: ids, titles, texts, JSON metadata and passages in SQLite.

Each document gets an integer row id (``rid``); each of its passages (one, or several
when long documents are chunked) gets a passage id (``pid``) and the character span it
covers. The vector index stores passage ids and BM25 stores row ids, so every search
result maps back to its document with one indexed lookup.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from densa.errors import ConfigError, InputError
from densa.types import Document

__all__ = ["DocumentStore", "Filter", "Passage", "parse_filter"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    pid INTEGER PRIMARY KEY,
    rid INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_rid ON passages (rid);
"""

Filter = Mapping[str, Any]


class DocumentStore:
    """SQLite-backed mapping ``row id -> Document``."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        if read_only:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def add(self, documents: Sequence[Document]) -> list[int]:
        """Insert documents and return their row ids (in order); see :meth:`add_passages`.

        Raises
        ------
        InputError
            A document id that is already stored.
        """
        start = int(self._db.execute("SELECT COALESCE(MAX(rid), -1) FROM documents").fetchone()[0]) + 1
        rids = list(range(start, start + len(documents)))
        try:
            self._db.executemany(
                "INSERT INTO documents (rid, id, title, text, metadata) VALUES (?, ?, ?, ?, ?)",
                [
                    (rid, d.id, d.title, d.text, json.dumps(dict(d.metadata), ensure_ascii=False))
                    for rid, d in zip(rids, documents, strict=True)
                ],
            )
        except sqlite3.IntegrityError:
            self._db.rollback()
            dupes = self.existing_ids([d.id for d in documents])
            raise InputError(
                str(self.path), None, f"document id(s) already in the index: {sorted(dupes)[:5]}"
            ) from None
        return rids

    def add_passages(
        self, rids: Sequence[int], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[list[int]]:
        """Record each document's passage spans; returns their passage ids, per document."""
        start = int(self._db.execute("SELECT COALESCE(MAX(pid), -1) FROM passages").fetchone()[0]) + 1
        out: list[list[int]] = []
        rows = []
        for rid, doc_spans in zip(rids, spans, strict=True):
            pids = list(range(start, start + len(doc_spans)))
            start += len(doc_spans)
            out.append(pids)
            rows += [(pid, rid, a, b) for pid, (a, b) in zip(pids, doc_spans, strict=True)]
        self._db.executemany("INSERT INTO passages (pid, rid, start, end) VALUES (?, ?, ?, ?)", rows)
        return out

    def passages(self, pids: Iterable[int]) -> dict[int, Passage]:
        """``pid -> (rid, start, end)``."""
        out: dict[int, Passage] = {}
        for part in _chunks(sorted(set(pids))):
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT pid, rid, start, end FROM passages WHERE pid IN ({marks})", part)
            out.update({int(p): (int(r), int(a), int(b)) for p, r, a, b in rows})
        return out

    def passage_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM passages").fetchone()[0])

    def pids_of_rids(self, rids: Iterable[int]) -> list[int]:
        out: list[int] = []
        for part in _chunks(sorted(set(rids))):
            marks = ",".join("?" * len(part))
            out += [
                int(r[0]) for r in self._db.execute(f"SELECT pid FROM passages WHERE rid IN ({marks})", part)
            ]
        return out

    def matching(self, where: Filter) -> set[int]:
        """Row ids of documents whose metadata has every ``field == value`` of ``where``."""
        clauses = " AND ".join("json_extract(metadata, ?) = ?" for _ in where)
        params: list[Any] = []
        for field, value in where.items():
            params += ['$."' + field.replace('"', '""') + '"', _sql_value(value)]
        rows = self._db.execute(f"SELECT rid FROM documents WHERE {clauses}", params)
        return {int(r[0]) for r in rows}

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            found.update(
                r[0] for r in self._db.execute(f"SELECT id FROM documents WHERE id IN ({marks})", part)
            )
        return found

    def rids_of(self, ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT id, rid FROM documents WHERE id IN ({marks})", part)
            out.update({r[0]: int(r[1]) for r in rows})
        return out

    def ids_of(self, rids: Iterable[int]) -> dict[int, str]:
        """``row id -> document id``."""
        out: dict[int, str] = {}
        for part in _chunks(sorted(set(rids))):
            marks = ",".join("?" * len(part))
            out.update(
                {
                    int(r): i
                    for r, i in self._db.execute(
                        f"SELECT rid, id FROM documents WHERE rid IN ({marks})", part
                    )
                }
            )
        return out

    def remove(self, rids: Sequence[int]) -> None:
        """Delete documents and their passages."""
        self._db.executemany("DELETE FROM documents WHERE rid = ?", [(r,) for r in rids])
        self._db.executemany("DELETE FROM passages WHERE rid = ?", [(r,) for r in rids])

    def commit(self) -> None:
        self._db.commit()

    def get_many(self, rids: Iterable[int]) -> dict[int, Document]:
        out: dict[int, Document] = {}
        for part in _chunks(sorted(set(rids))):
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT rid, id, title, text, metadata FROM documents WHERE rid IN ({marks})", part
            )
            for rid, doc_id, title, text, meta in rows:
                out[int(rid)] = Document(id=doc_id, text=text, title=title, metadata=json.loads(meta))
        return out

    def get(self, doc_id: str) -> Document | None:
        row = self._db.execute(
            "SELECT id, title, text, metadata FROM documents WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        return Document(id=row[0], text=row[2], title=row[1], metadata=json.loads(row[3]))

    def iter_documents(self) -> Iterator[tuple[int, Document]]:
        rows = self._db.execute("SELECT rid, id, title, text, metadata FROM documents ORDER BY rid")
        for rid, doc_id, title, text, meta in rows:
            yield int(rid), Document(id=doc_id, text=text, title=title, metadata=json.loads(meta))


Passage = tuple[int, int, int]


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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
        field, sep, raw = expr.partition("=")
        if not sep or not field.strip():
            raise ConfigError(f"filter {expr!r} is not of the form field=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[field.strip()] = value
    return out
