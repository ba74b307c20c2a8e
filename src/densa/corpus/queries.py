"""Readers for queries (BEIR ``queries.jsonl`` or ``qid<TAB>text``) and qrels.

Qrels are read from BEIR's TSV (header ``query-id corpus-id score``) or from TREC's
``qid 0 docid grade`` format, told apart by the number of columns.
"""

from __future__ import annotations

import json
from pathlib import Path

from densa.errors import InputError
from densa.types import Qrels, Query

__all__ = ["read_qrels", "read_queries"]


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise InputError(str(path), None, "file not found")
    out: list[tuple[int, str]] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputError(str(path), lineno, f"invalid UTF-8 at byte {exc.start}") from None
            if line.strip():
                out.append((lineno, line))
    return out


def read_queries(path: str | Path) -> list[Query]:
    """Read queries from ``*.jsonl`` (``{"_id", "text"}``) or TSV (``qid<TAB>text``).

    Raises
    ------
    InputError
        Malformed line, missing id or text, duplicate id, or no query at all.
    """
    path = Path(path)
    jsonl = path.suffix.lower() in (".jsonl", ".json")
    queries: list[Query] = []
    seen: set[str] = set()
    for lineno, line in _lines(path):
        if jsonl:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(str(path), lineno, f"malformed JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(str(path), lineno, "expected a JSON object")
            qid, text = obj.get("_id", obj.get("id")), obj.get("text")
        else:
            fields = line.split("\t")
            if len(fields) != 2:
                raise InputError(str(path), lineno, "expected 'qid<TAB>text'")
            qid, text = fields
        if qid is None or str(qid).strip() == "":
            raise InputError(str(path), lineno, "missing query id")
        if not isinstance(text, str) or not text.strip():
            raise InputError(str(path), lineno, f"query {qid!r} has no text")
        qid = str(qid)
        if qid in seen:
            raise InputError(str(path), lineno, f"duplicate query id {qid!r}")
        seen.add(qid)
        queries.append(Query(qid, text))
    if not queries:
        raise InputError(str(path), None, "no queries")
    return queries


def read_qrels(path: str | Path) -> Qrels:
    """Read qrels from BEIR TSV (``query-id corpus-id score``) or TREC (``qid 0 docid grade``)."""
    path = Path(path)
    judgements: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(path):
        fields = line.split("\t") if "\t" in line else line.split()
        if lineno == 1 and fields and fields[0].strip().lower() in ("query-id", "qid", "query_id"):
            continue
        if len(fields) == 3:
            qid, docid, grade = fields
        elif len(fields) == 4:
            qid, _, docid, grade = fields
        else:
            raise InputError(str(path), lineno, f"expected 3 (BEIR) or 4 (TREC) columns, got {len(fields)}")
        try:
            value = int(float(grade))
        except ValueError:
            raise InputError(str(path), lineno, f"relevance {grade!r} is not a number") from None
        judgements.setdefault(qid.strip(), {})[docid.strip()] = value
    if not judgements:
        raise InputError(str(path), None, "no judgements")
    return Qrels(judgements)
