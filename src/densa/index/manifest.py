"""The index manifest: what built the index and which data generation is current.

An index folder looks like::

    INDEX/
      manifest.json        # this file; replaced atomically on every change
      gen-000001/          # the current generation's data
        docs.sqlite        # documents and passages
        vectors.faiss      # one vector per passage
        bm25/              # keyword index over whole documents

A change writes a complete new generation beside the old one, then replaces
``manifest.json`` with one rename; a process killed at any point leaves the old or the
new generation in force, never a mix.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from densa._version import __version__
from densa.chunk.chunker import ChunkConfig
from densa.encode.config import EncoderSpec
from densa.errors import DensaError
from densa.index.bm25 import BM25Config
from densa.index.vectors import VectorIndexConfig

__all__ = ["FORMAT_VERSION", "MANIFEST", "Manifest"]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Manifest:
    """Everything needed to reopen an index and to tell how it was made."""

    encoder: EncoderSpec
    vectors: VectorIndexConfig
    bm25: BM25Config
    chunking: ChunkConfig | None
    generation: str
    documents: int
    passages: int
    truncated: int = 0
    bytes: dict[str, int] = field(default_factory=dict)
    densa_version: str = __version__
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "densa_version": self.densa_version,
            "created": self.created,
            "updated": self.updated,
            "generation": self.generation,
            "model": self.encoder.model,
            "dim": self.encoder.dim,
            "pooling": self.encoder.pooling,
            "normalize": self.encoder.normalize,
            "similarity": self.encoder.similarity,
            "prefixes": {
                "query": self.encoder.query_prefix,
                "passage": self.encoder.passage_prefix,
            },
            "index_kind": self.vectors.kind,
            "counts": {"documents": self.documents, "passages": self.passages, "truncated": self.truncated},
            "bytes": self.bytes,
            "encoder": self.encoder.to_dict(),
            "vectors": self.vectors.to_dict(),
            "bm25": self.bm25.to_dict(),
            "chunking": asdict(self.chunking) if self.chunking else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            encoder=EncoderSpec.from_dict(data["encoder"]),
            vectors=VectorIndexConfig.from_dict(data["vectors"]),
            bm25=BM25Config.from_dict(data["bm25"]),
            chunking=ChunkConfig(**data["chunking"]) if data.get("chunking") else None,
            generation=data["generation"],
            documents=int(data["counts"]["documents"]),
            passages=int(data["counts"]["passages"]),
            truncated=int(data["counts"].get("truncated", 0)),
            bytes={k: int(v) for k, v in data.get("bytes", {}).items()},
            densa_version=data["densa_version"],
            created=data["created"],
            updated=data["updated"],
            format=int(data["format"]),
        )

    def evolve(self, **changes: Any) -> Manifest:
        return replace(self, updated=_now(), densa_version=__version__, **changes)

    @classmethod
    def read(cls, index_dir: Path) -> Manifest:
        path = index_dir / MANIFEST
        if not path.is_file():
            raise DensaError(f"{index_dir} is not a densa index: no {MANIFEST}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls.from_dict(data)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DensaError(f"{path}: unreadable manifest ({exc})") from None
        if manifest.format > FORMAT_VERSION:
            raise DensaError(f"{path}: index format {manifest.format} is newer than this densa supports")
        return manifest

    def write(self, index_dir: Path) -> None:
        """Replace ``manifest.json`` atomically (write, fsync, rename, fsync the folder)."""
        tmp = index_dir / (MANIFEST + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, index_dir / MANIFEST)
        fd = os.open(index_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
