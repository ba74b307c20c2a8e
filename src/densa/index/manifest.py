"""The index manifest: the channels, and the segments of the current generation.

An index folder looks like::

    INDEX/
      manifest.json              # the current commit; replaced atomically on every change
      commits/gen-000007.json    # the same record, kept while a reader still uses it (its lease)
      segments/
        seg-000001/              # an immutable segment
          docs.sqlite            # its documents (id, title, text, JSON metadata)
          passages.npy           # (row, start, end) of each passage
          dense/                 # one folder per channel: that channel's part
          bm25/
          deletes-000007.npy     # tombstones: its deleted rows as of generation 7
        seg-000002/
      .lock                      # the writer lock

A change writes new files only (a new segment, a new tombstone file) and then replaces
``manifest.json`` with one rename: a process killed at any point leaves the old or the new
generation in force, never a mix. Names in the manifest are checked against fixed patterns,
so a manifest can never point outside its folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from densa._version import __version__
from densa.chunk.chunker import ChunkConfig
from densa.errors import DensaError, IndexDamagedError

__all__ = [
    "COMMITS_DIR",
    "FORMAT_VERSION",
    "MANIFEST",
    "SEGMENTS_DIR",
    "ChannelRecord",
    "Manifest",
    "SegmentRecord",
    "commit_name",
    "fsync_dir",
]

MANIFEST = "manifest.json"
COMMITS_DIR = "commits"
SEGMENTS_DIR = "segments"
FORMAT_VERSION = 2

_SEGMENT_NAME = re.compile(r"^seg-[0-9]{6,}$")
_DELETES_NAME = re.compile(r"^deletes-[0-9]{6,}\.npy$")
_CHANNEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def commit_name(generation: int) -> str:
    return f"gen-{generation:06d}.json"


def check_channel_name(name: str) -> str:
    """``name`` if it can name a channel (a letter, then letters, digits, ``-``, ``_``)."""
    if not _CHANNEL_NAME.match(name):
        raise DensaError(
            f"channel name {name!r}: use a letter, then letters, digits, '-' or '_' (at most 64)"
        )
    return name


@dataclass(frozen=True)
class ChannelRecord:
    """One channel: its registry kind and its full settings."""

    kind: str
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "settings": self.settings}


@dataclass(frozen=True)
class SegmentRecord:
    """One segment: where its rows sit in the global numbering, and what is deleted.

    ``parts`` holds each channel's statistics for this segment (bytes, and e.g. the FAISS
    kind actually used and the documents over the model's token limit).
    """

    name: str
    first_row: int
    first_passage: int
    rows: int
    passages: int
    parts: dict[str, dict[str, Any]]
    store_bytes: int = 0
    deleted: int = 0
    deleted_passages: int = 0
    deletes: str | None = None

    def __post_init__(self) -> None:
        if not _SEGMENT_NAME.match(self.name):
            raise ValueError(f"bad segment name {self.name!r}")
        if self.deletes is not None and not _DELETES_NAME.match(self.deletes):
            raise ValueError(f"bad tombstone name {self.deletes!r}")
        if min(self.first_row, self.first_passage, self.rows, self.passages, self.deleted) < 0:
            raise ValueError(f"negative counts in segment {self.name}")
        if self.deleted > self.rows or self.deleted_passages > self.passages:
            raise ValueError(f"segment {self.name} deletes more than it holds")

    @property
    def live(self) -> int:
        return self.rows - self.deleted

    @property
    def live_passages(self) -> int:
        return self.passages - self.deleted_passages

    @property
    def files(self) -> list[str]:
        """Paths under ``segments/`` that this record refers to."""
        names = [self.name]
        if self.deletes is not None:
            names.append(f"{self.name}/{self.deletes}")
        return names

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Manifest:
    """One generation of an index: what it holds and how it was made."""

    generation: int
    channels: Mapping[str, ChannelRecord]
    segments: tuple[SegmentRecord, ...]
    chunking: ChunkConfig | None
    next_row: int = 0
    next_passage: int = 0
    next_segment: int = 1
    densa_version: str = __version__
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    format: int = FORMAT_VERSION

    @property
    def documents(self) -> int:
        """Live documents."""
        return sum(s.live for s in self.segments)

    @property
    def passages(self) -> int:
        """Live passages."""
        return sum(s.live_passages for s in self.segments)

    def channel_stat(self, channel: str, key: str) -> int:
        """A statistic summed over the channel's parts (e.g. ``bytes``, ``truncated``)."""
        return sum(int(s.parts.get(channel, {}).get(key, 0)) for s in self.segments)

    def evolve(self, **changes: Any) -> Manifest:
        """The next generation with ``changes``."""
        return replace(
            self, generation=self.generation + 1, updated=_now(), densa_version=__version__, **changes
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "densa_version": self.densa_version,
            "created": self.created,
            "updated": self.updated,
            "generation": self.generation,
            "counts": {
                "documents": self.documents,
                "passages": self.passages,
                "segments": len(self.segments),
                "deleted": sum(s.deleted for s in self.segments),
            },
            "chunking": asdict(self.chunking) if self.chunking else None,
            "channels": {name: record.to_dict() for name, record in self.channels.items()},
            "segments": [s.to_dict() for s in self.segments],
            "next": {"row": self.next_row, "passage": self.next_passage, "segment": self.next_segment},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        channels = {
            check_channel_name(name): ChannelRecord(str(c["kind"]), dict(c["settings"]))
            for name, c in data["channels"].items()
        }
        return cls(
            generation=int(data["generation"]),
            channels=channels,
            segments=tuple(SegmentRecord.from_dict(s) for s in data["segments"]),
            chunking=ChunkConfig(**data["chunking"]) if data.get("chunking") else None,
            next_row=int(data["next"]["row"]),
            next_passage=int(data["next"]["passage"]),
            next_segment=int(data["next"]["segment"]),
            densa_version=str(data["densa_version"]),
            created=str(data["created"]),
            updated=str(data["updated"]),
            format=int(data["format"]),
        )

    @classmethod
    def parse(cls, text: str, source: Path) -> Manifest:
        """A manifest from its JSON, with a clear error for anything but a densa index of
        this format (an older one names ``densa upgrade``)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IndexDamagedError(
                f"{source}: unreadable manifest ({exc.msg} at line {exc.lineno})"
            ) from None
        if not isinstance(data, dict):
            raise IndexDamagedError(f"{source}: unreadable manifest (not a JSON object)")
        found = data.get("format")
        if found == 1:
            raise DensaError(
                f"{source.parent} is an index of format 1 (densa before channels and segments); "
                f"convert it with: densa upgrade {source.parent}"
            )
        if isinstance(found, int) and found > FORMAT_VERSION:
            raise DensaError(
                f"{source}: index format {found} is newer than this densa ({__version__}) supports; "
                "upgrade densa"
            )
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, DensaError) as exc:
            raise IndexDamagedError(f"{source}: unreadable manifest ({exc})") from None

    @classmethod
    def read(cls, index_dir: Path) -> Manifest:
        """The current manifest of ``index_dir``."""
        path = index_dir / MANIFEST
        if not path.is_file():
            raise DensaError(f"{index_dir} is not a densa index: no {MANIFEST}")
        return cls.parse(path.read_text(encoding="utf-8"), path)

    def write(self, path: Path) -> None:
        """Write to ``path`` atomically (write, fsync, rename, fsync the folder)."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
