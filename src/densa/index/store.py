"""The document store: ids, titles, texts and JSON metadata in SQLite.

Each document gets an integer row id; the vector index stores that row id, so a search
result maps back to its document with one indexed lookup.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from densa.errors import InputError
from densa.types import Document

__all__ = ["DocumentStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
"""


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
        """Insert documents and return their row ids (in order).

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

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        batch = list(ids)
        for i in range(0, len(batch), 500):
            part = batch[i : i + 500]
            marks = ",".join("?" * len(part))
            found.update(
                r[0] for r in self._db.execute(f"SELECT id FROM documents WHERE id IN ({marks})", part)
            )
        return found

    def rids_of(self, ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT id, rid FROM documents WHERE id IN ({marks})", part)
            out.update({r[0]: int(r[1]) for r in rows})
        return out

    def remove(self, rids: Sequence[int]) -> None:
        self._db.executemany("DELETE FROM documents WHERE rid = ?", [(r,) for r in rids])

    def commit(self) -> None:
        self._db.commit()

    def get_many(self, rids: Iterable[int]) -> dict[int, Document]:
        wanted = sorted(set(rids))
        out: dict[int, Document] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
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
