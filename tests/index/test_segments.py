"""Segments: an index changed by adds, deletes and merges searches exactly like a fresh build of
its live documents; readers keep their generation (leases) while writers go on."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from densa.chunk import ChunkConfig
from densa.corpus import read_corpus
from densa.fuse import FusionConfig
from densa.index import Index, MergePolicy, VectorIndexConfig
from densa.search import SearchConfig, Searcher
from densa.types import Document, Query
from tests.helpers import TINY, HashingEncoder

ROOT = Path(__file__).parents[2]
WORDS = [
    "heart",
    "attack",
    "artery",
    "blood",
    "pressure",
    "shark",
    "surfer",
    "wave",
    "ocean",
    "bread",
    "yeast",
    "dough",
    "oven",
    "stock",
    "market",
    "bond",
    "inflation",
    "python",
    "code",
    "compiler",
    "lava",
    "volcano",
    "ash",
    "moon",
    "orbit",
    "rocket",
    "glacier",
    "ice",
    "climate",
]
QUERIES = [
    "heart attack",
    "shark surfer waves",
    "bread yeast oven",
    "stock market bond",
    "python code",
    "lava ash",
]
CONFIGS = {
    "dense": SearchConfig(mode="dense"),
    "bm25": SearchConfig(mode="bm25"),
    "hybrid": SearchConfig(mode="hybrid"),
    "rrf": SearchConfig(mode="hybrid", fusion=FusionConfig(method="rrf")),
    "sum": SearchConfig(mode="dense", aggregate="sum", top_passages=2),
}


def _documents(n: int, prefix: str, seed: int) -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(4, 40))
        meta = {"topic": rng.choice(["a", "b", "c"]), "year": rng.randint(2018, 2022)}
        docs.append(Document(f"{prefix}{i}", " ".join(words) + ".", title=rng.choice(WORDS), metadata=meta))
    return docs


BASE = list(read_corpus(TINY / "corpus.jsonl")) + _documents(30, "g", 1)
SEQUENCES: dict[str, list[tuple[str, Any]]] = {
    "add": [("add", _documents(8, "a", 2))],
    "delete": [("delete", ["d5", "g3", "g17"])],
    "add-delete-add": [
        ("add", _documents(6, "a", 3)),
        ("delete", ["a1", "d2", "g0"]),
        ("add", _documents(5, "b", 4)),
        ("delete", ["b4"]),
    ],
    "delete-then-optimize": [
        ("delete", ["g1", "g2", "d9"]),
        ("add", _documents(4, "a", 5)),
        ("optimize", None),
    ],
    "re-add-a-deleted-id": [("delete", ["g4"]), ("add", [Document("g4", "a new text about glacier ice")])],
    "many-small-adds-merge": [("add", _documents(1, f"s{i}-", 10 + i)) for i in range(12)]
    + [("delete", ["s3-0", "g5"])],
}


def _apply(index: Index, steps: list[tuple[str, Any]]) -> tuple[Index, list[Document]]:
    live = {d.id: d for d in BASE}
    for op, arg in steps:
        if op == "add":
            updated = index.add(arg)
            live.update({d.id: d for d in arg})
        elif op == "delete":
            updated = index.delete(arg)
            for doc_id in arg:
                del live[doc_id]
        else:
            updated = index.optimize()
        index.close()  # its lease goes: the next commit may collect what only it used
        index = updated
    return index, list(live.values())


def _results(index: Index) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, config in CONFIGS.items():
        searcher = Searcher(index, config)
        for where in (None, {"topic": "a"}, {"year": 2020}):
            hits = searcher.hits(QUERIES, 7, filter=where)
            out[f"{name} {where}"] = [[(h.doc_id, h.score, h.passage) for h in hs] for hs in hits]
        run = searcher.search([Query(f"q{i}", q) for i, q in enumerate(QUERIES)], 20)
        out[f"{name} run"] = run.scores
    return out


def _assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    """The same documents in the same order with the same passages; scores equal up to float
    rounding (FAISS sums a distance in another order when the vectors sit elsewhere)."""
    assert got.keys() == want.keys()
    for key in want:
        if key.endswith(" run"):
            order = {q: list(d) for q, d in want[key].items()}
            assert {q: list(d) for q, d in got[key].items()} == order, key
            pairs = [(got[key][q][d], s) for q, docs in want[key].items() for d, s in docs.items()]
        else:
            assert [[(d, p) for d, _, p in hs] for hs in got[key]] == [
                [(d, p) for d, _, p in hs] for hs in want[key]
            ], key
            pairs = [
                (g[1], w[1])
                for gs, ws in zip(got[key], want[key], strict=True)
                for g, w in zip(gs, ws, strict=True)
            ]
        assert all(abs(g - w) <= 1e-5 for g, w in pairs), key


@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
@pytest.mark.parametrize("layout", ["flat", "hnsw", "chunked"])
def test_updates_equal_a_fresh_build(tmp_path: Path, sequence: str, layout: str) -> None:
    options: dict[str, Any] = {}
    encoder = HashingEncoder(jitter=layout == "hnsw")
    if layout == "hnsw":
        options["vectors"] = VectorIndexConfig(kind="hnsw", hnsw_m=8, exact_below=0)  # every segment HNSW
    if layout == "chunked":
        options["chunking"] = ChunkConfig(max_tokens=12, overlap=4)
    built = Index.build(BASE, tmp_path / "inc", encoder=encoder, batch_size=7, **options)
    updated, live = _apply(built, SEQUENCES[sequence])
    shuffled = random.Random(0).sample(live, len(live))  # another order, other row ids: same results
    fresh = Index.build(shuffled, tmp_path / "fresh", encoder=encoder, **options)
    assert len(updated) == len(fresh) == len(live)
    assert updated.manifest.passages == fresh.manifest.passages
    want = _results(fresh)
    _assert_same(_results(updated), want)
    _assert_same(_results(Index.open(tmp_path / "inc", encoder=encoder)), want)


def test_small_segments_are_merged_by_the_tiered_policy(tmp_path: Path) -> None:
    index = Index.build(BASE, tmp_path / "idx", encoder=HashingEncoder())
    sizes = []
    for i in range(12):
        index = index.add(_documents(1, f"s{i}-", i))
        sizes.append(len(index.manifest.segments))
    assert sizes[:8] == list(range(2, 10))  # one segment per add ...
    assert sizes[8] == 1  # ... until the tier holds 10: merged into one
    assert sizes[-1] == 4
    assert index.manifest.documents == len(BASE) + 12
    assert MergePolicy().find_merge(index.manifest.segments) is None
    segments = {p.name for p in (tmp_path / "idx" / "segments").iterdir()}
    assert segments == {s.name for s in index.manifest.segments}  # merged-away segments removed


def test_a_segment_mostly_deleted_is_rewritten(tmp_path: Path) -> None:
    index = Index.build(BASE, tmp_path / "idx", encoder=HashingEncoder())
    extra = _documents(6, "x", 7)
    index = index.add(extra).delete([d.id for d in extra[:3]])  # half of the second segment: rewritten
    assert [(s.rows, s.deleted) for s in index.manifest.segments] == [(len(BASE), 0), (3, 0)]
    index = index.delete([d.id for d in extra[3:]])  # all of it: the segment goes
    assert [(s.rows, s.deleted) for s in index.manifest.segments] == [(len(BASE), 0)]
    assert index.optimize().manifest.documents == len(BASE)


def test_readers_keep_their_generation_until_closed(tmp_path: Path) -> None:
    first = Index.build(BASE, tmp_path / "idx", encoder=HashingEncoder())
    before = _results(first)
    old_segment = first.manifest.segments[0].name
    second = first.add(_documents(3, "a", 9)).delete(["d1", "g2"])
    merged = second.optimize()
    assert len(merged.manifest.segments) == 1 and merged.manifest.segments[0].name != old_segment
    assert (tmp_path / "idx" / "segments" / old_segment).is_dir()  # `first` still reads it
    assert _results(first) == before  # and sees exactly what it saw
    first.close()
    second.close()
    latest = merged.add([Document("z", "another document")])  # the next commit collects what nobody holds
    assert not (tmp_path / "idx" / "segments" / old_segment).exists()
    assert {p.name for p in (tmp_path / "idx" / "commits").iterdir()} == {
        f"gen-{merged.manifest.generation:06d}.json",  # `merged` is still open
        f"gen-{latest.manifest.generation:06d}.json",
    }


def test_a_reader_in_another_process_keeps_its_generation(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    index = Index.build(BASE, path, encoder=HashingEncoder())
    old_segment = index.manifest.segments[0].name
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.index.reader_process", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert reader.stdin is not None and reader.stdout is not None
    try:
        assert reader.stdout.readline().split() == ["open", str(len(BASE))]
        index = index.delete(["d5", "g1"]).optimize()  # the reader's segment is merged away
        assert (path / "segments" / old_segment).is_dir()
        reader.stdin.write("search\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split()[:2] == ["found", "d5"]  # its snapshot: d5 still there
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
        reader.stdout.close()
    index.add([Document("z", "text")])  # the reader is gone: its generation is collected
    assert not (path / "segments" / old_segment).exists()
