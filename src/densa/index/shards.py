"""Encoded shards: what makes a build resumable.

While ``densa index`` runs, every encoded batch of passages is written to
``INDEX/.build/<channel>/shard-NNNNNN.npy`` with a small JSON record (written last, after an atomic
rename of the vectors). If the process is killed, running the same command again reuses
every finished shard whose passages are unchanged (same ids, same texts: a digest is
checked) and encodes only the rest. A finished build removes ``.build/``.

``build.json`` records what the shards were made with (encoder, chunking, batch size);
a build with other settings discards the old shards instead of mixing them in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BUILD_DIR", "BatchShards", "ShardCache", "batch_digest"]

BUILD_DIR = ".build"
_SIGNATURE = "build.json"


def batch_digest(pids: Sequence[int], texts: Sequence[str]) -> str:
    """Identity of one batch: its passage ids and texts."""
    digest = hashlib.sha256(np.asarray(pids, dtype=np.int64).tobytes())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class ShardCache:
    """Finished batches of one build, keyed by batch number and checked by digest."""

    def __init__(self, folder: Path, signature: dict[str, Any]) -> None:
        self.dir = folder
        wanted = json.dumps(signature, sort_keys=True)
        found = self.dir / _SIGNATURE
        if found.is_file() and found.read_text(encoding="utf-8") != wanted:
            shutil.rmtree(self.dir)  # made with other settings: start over
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(found, wanted)
        self.reused = 0

    def _paths(self, number: int) -> tuple[Path, Path]:
        return self.dir / f"shard-{number:06d}.npy", self.dir / f"shard-{number:06d}.json"

    def load(self, number: int, digest: str) -> tuple[npt.NDArray[np.float32], int] | None:
        """The shard's vectors and truncation count, if it is finished and matches ``digest``."""
        vectors_path, record_path = self._paths(number)
        if not record_path.is_file():
            return None
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("digest") != digest or not vectors_path.is_file():
            return None
        self.reused += 1
        return np.load(vectors_path, allow_pickle=False), int(record["truncated"])

    def save(self, number: int, digest: str, vectors: npt.NDArray[np.float32], truncated: int) -> None:
        vectors_path, record_path = self._paths(number)
        tmp = vectors_path.with_name(vectors_path.name + ".tmp")
        with tmp.open("wb") as f:
            np.save(f, vectors, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, vectors_path)
        _atomic_write_text(
            record_path, json.dumps({"digest": digest, "truncated": truncated, "rows": len(vectors)})
        )

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class BatchShards:
    """A part writer's batches, numbered in order, with each one's finished shard if a killed
    build left it (``resume_dir`` ``None``: not resumable, nothing is kept)."""

    def __init__(self, resume_dir: Path | None, signature: dict[str, Any]) -> None:
        self.cache = ShardCache(resume_dir, signature) if resume_dir is not None else None
        self._number = 0
        self._ids = 0

    def next(self, texts: Sequence[str]) -> tuple[int, str, tuple[npt.NDArray[np.float32], int] | None]:
        """The next batch's number and digest, and its shard's ``(matrix, truncated)`` if finished."""
        number, self._number = self._number, self._number + 1
        ids = list(range(self._ids, self._ids + len(texts)))
        self._ids += len(texts)
        digest = batch_digest(ids, texts)
        return number, digest, self.cache.load(number, digest) if self.cache is not None else None

    def save(self, number: int, digest: str, matrix: npt.NDArray[np.float32], truncated: int) -> None:
        if self.cache is not None:
            self.cache.save(number, digest, matrix, truncated)
