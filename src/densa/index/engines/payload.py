"""Document metadata as engine payload, so that densa's filters run inside the engine.

A part written to an engine stores, with each point, its document's top-level metadata
fields (read from the segment's own document store, which is always written before its
parts). A filter ``{field: value}`` then goes to the engine as its own filter (Qdrant payload
conditions; a Milvus expression on a JSON field) with only the segment's deleted points as an
id list, instead of the list of every allowed point.

The engine must match exactly the documents densa's SQLite filter matches
(``json_extract(metadata, '$."field"') = value``), so values are stored in the form SQLite
compares them in: numbers (and booleans, which SQLite reads as 1 and 0) as floats, strings as
they are. A field's key in the engine is a hash of its name (``m_`` + 16 hex digits), so no
field name can change a filter expression. What the engine cannot hold faithfully (nested
objects and lists, integers beyond 2**53) is left out, and the field is recorded as
*partial*: a filter on it (or with such a value) falls back to the id list, which is always
exact.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densa.index.store import DOCS_FILE, Filter, SegmentStore

__all__ = ["Payloads", "engine_filter", "payload_key", "segment_payloads"]

Value = float | str
_EXACT_INT = 2**53


def payload_key(name: str) -> str:
    """The engine key of metadata field ``name``.

    Examples
    --------
    >>> payload_key("topic")
    'm_23d611a6f6f8e3ef'
    """
    return "m_" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def _value(value: Any) -> Value | None:
    """The engine form of a metadata or filter value; ``None`` when it has none."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int):
        return float(value) if abs(value) <= _EXACT_INT else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value
    return None


@dataclass(frozen=True)
class Payloads:
    """Per point, its engine payload; and the keys some value of which was left out."""

    points: list[dict[str, Value]]
    partial: frozenset[str] = field(default_factory=frozenset)


def segment_payloads(segment: Path, points: int) -> Payloads | None:
    """The payload of each passage of the segment folder ``segment`` (point ``i`` = local
    passage ``i``), or ``None`` when the segment has not ``points`` passages (a part of other
    units), no document has metadata, or the folder holds no document store (a part written
    outside an index)."""
    if not (segment / DOCS_FILE).is_file():
        return None
    store = SegmentStore(segment)
    try:
        if len(store.passages) != points:
            return None
        per_row: dict[int, dict[str, Value]] = {}
        partial: set[str] = set()
        for row, doc in store.iter_documents():
            out: dict[str, Value] = {}
            for name, raw in doc.metadata.items():
                key = payload_key(name)
                value = _value(raw)
                if value is not None:
                    out[key] = value
                elif raw is not None:  # a null never matches a filter: nothing is lost
                    partial.add(key)
            per_row[row] = out
        if not any(per_row.values()) and not partial:
            return None
        return Payloads([per_row[int(r)] for r in store.passage_rows], frozenset(partial))
    finally:
        store.close()


def engine_filter(where: Filter, partial: frozenset[str]) -> dict[str, Value] | None:
    """``where`` as ``{engine key: value}`` conditions (all must hold), or ``None`` when the
    engine cannot apply it exactly (a partial field, a value it cannot hold, a string with
    control characters, which Milvus expressions cannot quote)."""
    out: dict[str, Value] = {}
    for name, raw in where.items():
        key, value = payload_key(name), _value(raw)
        if value is None or key in partial:
            return None
        if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
            return None
        out[key] = value
    return out
