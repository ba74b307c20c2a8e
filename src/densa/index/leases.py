"""Reader leases, and removing what no generation in use refers to.

Every commit writes ``commits/gen-NNNNNN.json`` (the generation's manifest) before it
replaces ``manifest.json``. A reader opens the commit file of the generation it reads and
holds a shared ``flock`` on it for as long as it reads: that is its *lease*. After a
commit, the writer tries an exclusive, non-blocking lock on every older commit file: one
it gets is held by nobody, so the files only it refers to (old segments, old tombstone
files) are removed, and then the commit file itself. One it cannot get is in use (by another
process, or by the server's previous snapshot) and is kept, with everything it refers to.

A reader that lost the race (the file was removed between its read of ``manifest.json`` and
its lock) sees the commit file gone or unlinked and reads ``manifest.json`` again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from densa.errors import DensaError, IndexDamagedError
from densa.index.engines.base import drop_orphans, referenced_collections, remove_folder, sweep_embedded
from densa.index.manifest import COMMITS_DIR, MANIFEST, SEGMENTS_DIR, Manifest, commit_name

__all__ = ["Lease", "acquire", "collect_garbage"]

_ATTEMPTS = 100


class Lease:
    """A shared lock on one generation's commit file; :meth:`release` ends it."""

    def __init__(self, fd: int, generation: int) -> None:
        self._fd: int | None = fd
        self.generation = generation

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:
        self.release()


def acquire(index_dir: Path) -> tuple[Manifest, Lease]:
    """The current generation's manifest, with a lease on it."""
    for _ in range(_ATTEMPTS):
        current = Manifest.read(index_dir)
        path = index_dir / COMMITS_DIR / commit_name(current.generation)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if Manifest.read(index_dir).generation == current.generation:
                raise IndexDamagedError(f"{path}: commit file of the current generation is missing") from None
            continue  # a newer generation was committed meanwhile and this one collected
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink == 0:  # collected while we waited for the lock
            os.close(fd)
            continue
        with os.fdopen(os.dup(fd), encoding="utf-8") as f:
            manifest = Manifest.parse(f.read(), path)
        return manifest, Lease(fd, manifest.generation)
    raise DensaError(f"{index_dir}: the index changed {_ATTEMPTS} times while it was being opened")


def _referenced(manifest: Manifest) -> set[str]:
    return {name for segment in manifest.segments for name in segment.files}


def collect_garbage(index_dir: Path, current: Manifest | None) -> None:
    """Remove old commits nobody holds, and segment files no remaining commit refers to.

    Call it holding the writer lock (only the writer creates files, so anything not referred
    to by ``current`` or a held commit is an old generation's, or a killed writer's).
    """
    commits = index_dir / COMMITS_DIR
    keep = _referenced(current) if current is not None else set()
    stale: list[tuple[Path, int]] = []
    for path in sorted(commits.glob("gen-*.json")) if commits.is_dir() else []:
        if current is not None and path.name == commit_name(current.generation):
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a reader holds this generation: keep what it refers to
            with os.fdopen(os.dup(fd), encoding="utf-8") as f, contextlib.suppress(DensaError):
                keep |= _referenced(Manifest.parse(f.read(), path))
            os.close(fd)
            continue
        stale.append((path, fd))
    segments = index_dir / SEGMENTS_DIR
    for folder in sorted(segments.iterdir()) if segments.is_dir() else []:
        if folder.name not in keep:
            remove_folder(folder)  # with the engine collections of its parts
            continue
        for tombstone in folder.glob("deletes-*.npy"):
            if f"{folder.name}/{tombstone.name}" not in keep:
                tombstone.unlink(missing_ok=True)
    referenced = referenced_collections(index_dir)
    drop_orphans(index_dir, referenced)
    sweep_embedded(index_dir, referenced)
    for path, fd in stale:
        path.unlink(missing_ok=True)
        os.close(fd)
    (index_dir / (MANIFEST + ".tmp")).unlink(missing_ok=True)
