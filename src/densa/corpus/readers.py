"""Streaming corpus readers: BEIR ``corpus.jsonl``, TSV, a folder of text files, an iterable.

Every reader yields :class:`~densa.types.Document` one at a time and never holds the
file in memory. Bad input raises :class:`~densa.errors.InputError` naming the file and
line; with ``skip_bad=True`` the bad record is recorded in a :class:`SkipReport` instead
and reading goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal, NamedTuple

from densa.errors import InputError
from densa.types import Document

__all__ = [
    "MAX_METADATA_DEPTH",
    "CorpusFormat",
    "SkipReport",
    "count_records",
    "detect_format",
    "metadata_depth",
    "peek",
    "read_corpus",
]

CorpusFormat = Literal["auto", "jsonl", "tsv", "folder"]

_TEXT_SUFFIXES = (".txt", ".md")
_TSV_HEADERS = ({"id", "text"}, {"id", "title", "text"})
_RESERVED = {"_id", "id", "title", "text", "metadata"}
#: How deep a document's metadata may nest (JSON objects and lists inside each other).
MAX_METADATA_DEPTH = 32
_ITERABLE = "<iterable>"


@dataclass
class SkipReport:
    """Bad records passed over by a reader running with ``skip_bad=True``."""

    skipped: list[InputError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self, limit: int = 10) -> str:
        lines = [f"skipped {len(self.skipped)} bad record(s):"]
        lines += [f"  {e}" for e in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


class _Record(NamedTuple):
    """A record as read, before validation."""

    source: str
    line: int | None
    id: Any
    title: Any
    text: Any
    metadata: Any


_Raw = _Record | InputError


def detect_format(path: Path) -> Literal["jsonl", "tsv", "folder"]:
    """Pick a reader from the path: a directory, ``*.jsonl``/``*.json``, or ``*.tsv``/``*.txt``."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    raise InputError(
        str(path), None, "cannot tell the corpus format from the name; pass --format (format= in Python)"
    )


def read_corpus(
    source: str | Path | Iterable[Document | Mapping[str, Any] | tuple[str, str]],
    *,
    format: CorpusFormat = "auto",
    skip_bad: bool = False,
    report: SkipReport | None = None,
    taken: Callable[[Sequence[str]], Collection[str]] | None = None,
) -> Iterator[Document]:
    """Stream documents from a file, a folder, or any iterable of documents.

    Parameters
    ----------
    source
        A BEIR ``corpus.jsonl`` (``{"_id", "title", "text", "metadata"?}`` a line), a TSV file
        (``id<TAB>text`` or ``id<TAB>title<TAB>text``), a folder of ``.txt``/``.md`` files
        (id = relative path), or an iterable of :class:`Document`, dicts or ``(id, text)``.
    format
        Force a reader; ``"auto"`` decides from the path.
    skip_bad
        Record bad records in ``report`` and go on instead of raising.
    report
        Collects what was skipped.
    taken
        The ids among a batch that are already used where the documents go (e.g.
        ``Index.taken``); asked every :data:`TAKEN_BATCH` records, so that a document that
        would collide is reported at its line before anything is encoded.

    Raises
    ------
    InputError
        Malformed line, missing id or text, duplicate id, an id already taken, empty text,
        invalid UTF-8, or a corpus without a single valid document.

    Examples
    --------
    >>> docs = list(read_corpus([("a", "heart attack"), {"_id": "b", "text": "stocks"}]))
    >>> [d.id for d in docs]
    ['a', 'b']
    """
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise InputError(name, None, "corpus not found")
        kind = detect_format(path) if format == "auto" else format
        raws = {"jsonl": _jsonl_records, "tsv": _tsv_records, "folder": _folder_records}[kind](path)
    else:
        name = _ITERABLE
        raws = _iterable_records(source)
    report = report if report is not None else SkipReport()
    documents = _validated(raws, name, skip_bad, report)
    if taken is None:
        return (doc for doc, _ in documents)
    return _untaken(documents, taken, skip_bad, report)


def count_records(path: Path, format: CorpusFormat = "auto") -> int:
    """About how many documents a corpus holds, read cheaply (non-blank lines of a JSONL or TSV
    file, text files of a folder), e.g. for a progress bar's total and its ETA."""
    path = Path(path)
    kind = detect_format(path) if format == "auto" else format
    if kind == "folder":
        return sum(1 for p in path.rglob("*") if p.suffix in _TEXT_SUFFIXES and p.is_file())
    count = 0
    with path.open("rb") as f:
        for line in f:
            count += bool(line.strip())
    return max(0, count - 1) if kind == "tsv" else count


def peek(documents: Iterable[Document], n: int) -> tuple[list[Document], Iterator[Document]]:
    """The first ``n`` documents, and an iterator over all of them (those first ones included).

    Examples
    --------
    >>> head, everything = peek(read_corpus([("a", "x"), ("b", "y"), ("c", "z")]), 2)
    >>> [d.id for d in head], [d.id for d in everything]
    (['a', 'b'], ['a', 'b', 'c'])
    """
    it = iter(documents)
    head = list(islice(it, n))
    return head, chain(head, it)


def _validated(
    raws: Iterator[_Raw], name: str, skip_bad: bool, report: SkipReport
) -> Iterator[tuple[Document, _Record]]:
    seen: set[str] = set()
    for raw in raws:
        try:
            if isinstance(raw, InputError):
                raise raw
            doc = _to_document(raw)
            if doc.id in seen:
                raise InputError(raw.source, raw.line, f"duplicate id {doc.id!r}")
        except InputError as err:
            if not skip_bad:
                raise
            report.skipped.append(err)
            continue
        seen.add(doc.id)
        yield doc, raw
    if not seen:
        raise InputError(name, None, "corpus is empty: no valid document")


TAKEN_BATCH = 1024


def _untaken(
    documents: Iterator[tuple[Document, _Record]],
    taken: Callable[[Sequence[str]], Collection[str]],
    skip_bad: bool,
    report: SkipReport,
) -> Iterator[Document]:
    while batch := list(islice(documents, TAKEN_BATCH)):
        used = set(taken([doc.id for doc, _ in batch]))
        for doc, raw in batch:
            if doc.id not in used:
                yield doc
                continue
            err = InputError(raw.source, raw.line, f"document id {doc.id!r} is already in the index")
            if not skip_bad:
                raise err
            report.skipped.append(err)


def _to_document(raw: _Record) -> Document:
    source, line, doc_id, title, text, metadata = raw
    if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
        raise InputError(source, line, "missing document id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str):
        raise InputError(source, line, f"document id must be a string, got {type(doc_id).__name__}")
    if text is None:
        raise InputError(source, line, f"document {doc_id!r} has no 'text'")
    if not isinstance(text, str):
        raise InputError(source, line, f"document {doc_id!r}: 'text' must be a string")
    if not text.strip():
        raise InputError(source, line, f"document {doc_id!r} has empty text")
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise InputError(source, line, f"document {doc_id!r}: 'title' must be a string")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InputError(source, line, f"document {doc_id!r}: 'metadata' must be an object")
    if metadata_depth(metadata) > MAX_METADATA_DEPTH:
        raise InputError(
            source, line, f"document {doc_id!r}: metadata nests deeper than {MAX_METADATA_DEPTH} levels"
        )
    return Document(id=doc_id, text=text, title=title, metadata=metadata)


def metadata_depth(value: Any) -> int:
    """How deep JSON objects and lists nest in ``value`` (without recursion).

    Examples
    --------
    >>> metadata_depth({"a": 1}), metadata_depth({"a": {"b": [1, {"c": 2}]}})
    (1, 4)
    """
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
            deepest = max(deepest, depth + 1)
    return deepest


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | InputError]]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield lineno, InputError(str(path), lineno, f"invalid UTF-8 at byte {exc.start}")


def _jsonl_records(path: Path) -> Iterator[_Raw]:
    for lineno, line in _decoded_lines(path):
        if isinstance(line, InputError):
            yield line
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:  # some messages end in "at", e.g. "... starting at"
            message = exc.msg.removesuffix(" at")
            yield InputError(str(path), lineno, f"malformed JSON ({message} at column {exc.colno})")
            continue
        except RecursionError:
            yield InputError(str(path), lineno, f"JSON nested deeper than {MAX_METADATA_DEPTH} levels")
            continue
        if not isinstance(obj, dict):
            yield InputError(str(path), lineno, "expected a JSON object")
            continue
        metadata = obj.get("metadata")
        extra = {k: v for k, v in obj.items() if k not in _RESERVED}
        if extra and (metadata is None or isinstance(metadata, dict)):
            metadata = {**extra, **(metadata or {})}
        doc_id = obj.get("_id", obj.get("id"))
        yield _Record(str(path), lineno, doc_id, obj.get("title"), obj.get("text"), metadata)


def _tsv_records(path: Path) -> Iterator[_Raw]:
    for lineno, line in _decoded_lines(path):
        if isinstance(line, InputError):
            yield line
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        if lineno == 1 and {f.strip().lower() for f in fields} in _TSV_HEADERS:
            continue
        if len(fields) == 2:
            yield _Record(str(path), lineno, fields[0].strip(), "", fields[1], None)
        elif len(fields) == 3:
            yield _Record(str(path), lineno, fields[0].strip(), fields[1], fields[2], None)
        else:
            yield InputError(
                str(path),
                lineno,
                f"expected 'id<TAB>text' or 'id<TAB>title<TAB>text', got {len(fields)} fields",
            )


def _folder_records(root: Path) -> Iterator[_Raw]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES)
    for path in files:
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            yield InputError(str(path), line, f"invalid UTF-8 at byte {exc.start}")
            continue
        doc_id = path.relative_to(root).as_posix()
        yield _Record(str(path), None, doc_id, "", text, None)


def _iterable_records(items: Iterable[Any]) -> Iterator[_Raw]:
    for index, item in enumerate(items, start=1):
        if isinstance(item, Document):
            yield _Record(_ITERABLE, index, item.id, item.title, item.text, dict(item.metadata))
        elif isinstance(item, Mapping):
            doc_id = item.get("_id", item.get("id"))
            yield _Record(_ITERABLE, index, doc_id, item.get("title"), item.get("text"), item.get("metadata"))
        elif isinstance(item, tuple) and len(item) == 2:
            yield _Record(_ITERABLE, index, item[0], "", item[1], None)
        else:
            yield InputError(_ITERABLE, index, f"cannot read a document from {type(item).__name__}")
