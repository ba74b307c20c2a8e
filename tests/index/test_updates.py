"""Add and delete keep vectors, BM25 and the store consistent, atomically."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from densa.corpus import read_corpus
from densa.errors import ConflictError, NotFoundError
from densa.index import Index, Manifest
from densa.types import Document
from tests.helpers import TINY, HashingEncoder, search

QUERIES = ["heart attack", "shark surfer", "bread yeast baking", "stock market", "python language", "lava"]
EXTRA = [
    Document("e1", "Surfers paddle out beyond the breaking waves.", title="Surfing"),
    Document(
        "e2", "Sourdough bread uses a wild yeast starter.", title="Sourdough", metadata={"topic": "food"}
    ),
    Document("e3", "Bond markets react to inflation data.", title="Bonds"),
]


def _docs() -> list[Document]:
    return list(read_corpus(TINY / "corpus.jsonl"))


def _results(index: Index) -> dict[str, list[list[tuple[str, float]]]]:
    return {
        mode: [
            [(h.doc_id, round(h.score, 5)) for h in hits] for hits in search(index, QUERIES, k=5, mode=mode)
        ]
        for mode in ("dense", "bm25", "hybrid")
    }


def test_add_equals_a_fresh_build(tmp_path: Path) -> None:
    incremental = Index.build(_docs(), tmp_path / "inc", encoder=HashingEncoder()).add(EXTRA)
    fresh = Index.build(_docs() + EXTRA, tmp_path / "fresh", encoder=HashingEncoder())
    assert len(incremental) == len(fresh) == 13
    assert _results(incremental) == _results(fresh)
    assert incremental.get("e2") == EXTRA[1]


def test_delete_equals_a_fresh_build_without_the_documents(tmp_path: Path) -> None:
    index = Index.build(_docs() + EXTRA, tmp_path / "idx", encoder=HashingEncoder()).delete(["d5", "e2"])
    kept = [d for d in _docs() + EXTRA if d.id not in {"d5", "e2"}]
    fresh = Index.build(kept, tmp_path / "fresh", encoder=HashingEncoder())
    assert _results(index) == _results(fresh)
    returned = {
        h.doc_id
        for mode in ("dense", "bm25", "hybrid")
        for hits in search(index, QUERIES, 20, mode=mode)
        for h in hits
    }
    assert returned.isdisjoint({"d5", "e2"})
    assert index.get("d5") is None
    reopened = Index.open(tmp_path / "idx", encoder=HashingEncoder())
    assert len(reopened) == 11 and reopened.manifest.passages == 11


def test_failed_updates_change_nothing(tmp_path: Path) -> None:
    index = Index.build(_docs(), tmp_path / "idx", encoder=HashingEncoder())
    before = (tmp_path / "idx" / "manifest.json").read_text()
    with pytest.raises(ConflictError, match="already in the index"):
        index.add([Document("new", "fine"), Document("d1", "duplicate of an existing id")])
    with pytest.raises(NotFoundError, match="no such document"):
        index.delete(["d1", "nope"])
    assert (tmp_path / "idx" / "manifest.json").read_text() == before
    segments = [s["name"] for s in json.loads(before)["segments"]]
    assert sorted(p.name for p in (tmp_path / "idx" / "segments").iterdir()) == segments  # nothing left over
    assert len(Index.open(tmp_path / "idx", encoder=HashingEncoder())) == 10


def _state(path: Path) -> int:
    index = Index.open(path, encoder=HashingEncoder())
    n = len(index)
    report = index.check()  # every part of every segment opens and agrees with the manifest
    assert report["channels"] == {"dense": n, "bm25": n} and report["passages"] == n
    hits = search(index, ["volcanoes bread"], k=n, mode="bm25")[0]
    assert len({h.doc_id for h in hits}) == len(hits)
    index.close()
    return n


@pytest.mark.slow
def test_kill_during_add_leaves_old_or_new_state(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    Index.build(_docs(), path, encoder=HashingEncoder())
    rng = random.Random(7)
    seen = set()
    mid_write = False
    for trial in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.index.writer_process", str(path), "300"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        if trial < 3:
            time.sleep(rng.uniform(0.0, 1.5))  # most likely during the add
        elif trial < 5:
            assert proc.stdout.readline().strip() == "added"
            time.sleep(rng.uniform(0.0, 0.05))  # during the merge that follows it
        else:  # the last run is left to finish, and killed right after its commit
            assert proc.stdout.readline().strip() == "added"
            assert proc.stdout.readline().strip() == "done"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        # killed with a new segment half-written (an orphan folder the manifest does not list)
        mid_write |= len(list((path / "segments").iterdir())) > len(Manifest.read(path).segments)
        count = _state(path)
        assert count in (10, 310), count
        seen.add(count)
        if count == 310:
            Index.open(path, encoder=HashingEncoder()).delete([f"new-{i}" for i in range(300)])
    assert mid_write and 10 in seen  # a kill landed mid-write and left the old state
    assert 310 in seen  # the last run finished (or was killed after its commit)
