"""Dense channels kept in real engines (Qdrant local mode, milvus-lite): the same results as
FAISS through adds, deletes, merges and filters; failed writes leave the last commit; old
collections are dropped with their segments."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from densa.errors import ConfigError, EngineError
from densa.index import Index, VectorIndexConfig
from densa.index.engines import EngineLocation, close_all, connect
from densa.search import SearchConfig, Searcher
from tests.helpers import HashingEncoder
from tests.index.test_segments import BASE, SEQUENCES, _apply, _assert_same, _results

pytest.importorskip("qdrant_client")
pytest.importorskip("pymilvus")

ENGINES = ["qdrant", "milvus"]
ROOT = Path(__file__).parents[3]


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    close_all()  # embedded engines hold their storage until closed


def _collections(index: Index, engine: str) -> set[str]:
    return set(connect(EngineLocation(engine), index.path).collections())


@pytest.mark.parametrize("sequence", ["add-delete-add", "delete-then-optimize"])
@pytest.mark.parametrize("engine", ENGINES)
def test_an_engine_channel_through_updates_equals_a_fresh_faiss_build(
    tmp_path: Path, engine: str, sequence: str
) -> None:
    encoder = HashingEncoder(jitter=True)  # no exact ties: engines sum floats in their own order
    vectors = VectorIndexConfig(kind="hnsw", engine=engine, exact_below=0)
    built = Index.build(BASE, tmp_path / "engine", encoder=encoder, batch_size=7, vectors=vectors)
    updated, live = _apply(built, SEQUENCES[sequence])
    fresh = Index.build(random.Random(0).sample(live, len(live)), tmp_path / "faiss", encoder=encoder)
    _assert_same(_results(updated), _results(fresh))  # filters and tombstones pushed into the engine
    referenced = {
        (updated.path / "segments" / s.name / "dense" / "external.json").read_text()
        for s in updated.manifest.segments
    }
    assert len(referenced) == len(updated.manifest.segments)
    updated = updated.delete([live[0].id])  # a commit with no older reader left: collects the rest
    assert len(_collections(updated, engine)) == len(updated.manifest.segments)  # merged-away ones dropped


@pytest.mark.parametrize("engine", ENGINES)
def test_export_copies_vectors_into_the_engine_without_re_encoding(tmp_path: Path, engine: str) -> None:
    encoder = HashingEncoder(jitter=True)
    index = Index.build(BASE, tmp_path / "idx", encoder=encoder)
    encoded = encoder.encoded_documents
    index = index.copy_channel("dense", engine, VectorIndexConfig(kind="flat", engine=engine))
    assert encoder.encoded_documents == encoded
    assert index.channels[engine].settings["vectors"]["engine"] == engine
    queries = ["heart attack", "python code", "lava ash"]
    for where in (None, {"topic": "b"}):
        faiss = Searcher(index, SearchConfig(mode="dense")).hits(queries, 10, filter=where)
        moved = Searcher(index, SearchConfig(mode=engine)).hits(queries, 10, filter=where)
        assert [[h.doc_id for h in hs] for hs in moved] == [[h.doc_id for h in hs] for hs in faiss]
        assert all(
            abs(a.score - b.score) < 1e-5
            for x, y in zip(moved, faiss, strict=True)
            for a, b in zip(x, y, strict=True)
        )
    reopened = Index.open(index.path, encoder=encoder)
    assert len(Searcher(reopened, SearchConfig(mode=f"{engine}+bm25")).hits(queries, 5)[0]) == 5


def test_a_failed_engine_write_leaves_the_last_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = HashingEncoder(jitter=True)
    index = Index.build(BASE, tmp_path / "idx", encoder=encoder, vectors=VectorIndexConfig(engine="qdrant"))
    before = index.manifest.generation
    collections = _collections(index, "qdrant")
    engine = connect(EngineLocation("qdrant"), index.path)

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine, "insert", broken)
    with pytest.raises(
        EngineError, match=r"qdrant \(embedded\): writing collection densa_\w+ failed: disk full"
    ):
        index.add([BASE[0].__class__("new", "a new document about heart attacks")])
    monkeypatch.undo()
    reopened = Index.open(index.path, encoder=encoder)
    assert reopened.manifest.generation == before and reopened.get("new") is None
    assert _collections(reopened, "qdrant") == collections  # the half-written one was dropped
    assert Searcher(reopened, SearchConfig(mode="dense")).hits(["heart attack"], 3)[0]


def test_engine_locations_and_kinds_are_checked() -> None:
    assert str(EngineLocation.parse("milvus://db.example:19530")) == "milvus+http://db.example:19530"
    assert EngineLocation.parse("qdrant+https://q.example").server == "https://q.example"
    with pytest.raises(ConfigError, match="unknown engine 'weaviate'"):
        EngineLocation.parse("weaviate")
    with pytest.raises(ConfigError, match="must be an http"):
        EngineLocation.parse("qdrant+ftp://x")
    with pytest.raises(ConfigError, match="qdrant has no 'ivf-flat' index"):
        VectorIndexConfig(kind="ivf-flat", engine="qdrant")
    with pytest.raises(ConfigError, match="milvus has no 'binary' index"):
        VectorIndexConfig(kind="binary", engine="milvus")
    assert "engine" not in VectorIndexConfig().to_dict()  # FAISS channels' manifests are unchanged


def test_an_embedded_engine_open_in_another_process_is_a_clear_error(tmp_path: Path) -> None:
    index = Index.build(
        BASE, tmp_path / "idx", encoder=HashingEncoder(), vectors=VectorIndexConfig(engine="qdrant")
    )
    Searcher(index, SearchConfig(mode="dense")).hits(["heart"], 1)  # this process holds the storage
    code = (
        "import sys; sys.path.insert(0, sys.argv[2])\n"
        "from tests.helpers import HashingEncoder\n"
        "from densa.errors import EngineError\n"
        "from densa.index import Index\n"
        "from densa.search import SearchConfig, Searcher\n"
        "try:\n"
        "    Searcher(Index.open(sys.argv[1], encoder=HashingEncoder()), SearchConfig()).hits(['heart'], 1)\n"
        "except EngineError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(index.path), str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert "is open in another process: Qdrant's local mode serves one process at a time" in done.stdout


_TRICKY = [
    {"kind": "a", "n": 1, "flag": True, "deep": {"x": 1}},
    {"kind": 'we"ird\\', "n": 2.0, "flag": False},
    {"kind": 'x" or pid >= 0 or "', "n": 3, "flag": 1},
    {"kind": "é ünï", "n": 2**60, "flag": None},
    {"n": 1.5, "m": 2},
    {"kind": "a", "n": 2, "flag": True, "line": "two\nlines", "m": 2.0},
]


@pytest.mark.parametrize("engine", ENGINES)
def test_filters_run_in_the_engine_on_payload_and_match_densa_s_own(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every filter answers as the FAISS channel answers (densa's SQLite filter), whether the
    engine applies it on its payload or falls back to an id list; only the deleted ids go to
    the engine with a payload filter."""
    from densa.index.engines.payload import payload_key
    from densa.types import Document

    docs = [
        Document(f"t{i}", f"document {i} about topic {i % 3}", metadata=_TRICKY[i % len(_TRICKY)])
        for i in range(36)
    ]
    encoder = HashingEncoder(jitter=True)
    index = Index.build(docs, tmp_path / "idx", encoder=encoder)
    index = index.copy_channel("dense", engine, VectorIndexConfig(kind="flat", engine=engine))
    index = index.delete(["t0", "t7"])
    part = index.snapshot.channel(engine).parts[0]  # type: ignore[attr-defined]
    sent: list[tuple[object, object]] = []  # (ids, payload filter) of each engine search
    engine_search = type(part.engine).search

    def spy(self: object, collection: str, queries: object, k: int, ids: object, *rest: object) -> object:
        sent.append((ids, rest[2] if len(rest) > 2 else None))
        return engine_search(self, collection, queries, k, ids, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(type(part.engine), "search", spy)
    queries = ["document about topic 1", "topic 2"]
    filters: list[dict[str, object]] = [
        {"kind": "a"},
        {"kind": 'we"ird\\'},
        {"kind": 'x" or pid >= 0 or "'},
        {"kind": "é ünï"},
        {"n": 2},  # n is partial (2**60 has no exact float): an id list
        {"n": 1.5},
        {"n": 2**60},
        {"m": 2},  # 2 and 2.0 are equal for SQLite
        {"flag": True},  # SQLite reads true as 1
        {"kind": "a", "flag": 1},
        {"deep": {"x": 1}},  # nested: an id list
        {"line": "two\nlines"},  # a control character: an id list
        {"kind": "nothing"},
        {"missing": "x"},
    ]
    pushed = 0
    for where in filters:
        sent.clear()
        want = Searcher(index, SearchConfig(mode="dense")).hits(queries, 10, filter=where)
        got = Searcher(index, SearchConfig(mode=engine)).hits(queries, 10, filter=where)
        assert [[h.doc_id for h in hs] for hs in got] == [[h.doc_id for h in hs] for hs in want], where
        assert all(len(hs) == len(set(h.doc_id for h in hs)) for hs in got)
        assert all(h.metadata == next(d.metadata for d in docs if d.id == h.doc_id) for hs in got for h in hs)
        if sent and sent[0][1] is not None:
            pushed += 1
            ids = sent[0][0]
            assert ids is not None and sorted(ids.tolist()) == [0, 7]  # type: ignore[attr-defined]
    assert pushed == 7  # every filter the engine can hold exactly went to it
    assert part.partial == frozenset({payload_key("deep"), payload_key("n")})


def test_a_collection_that_could_not_be_dropped_is_dropped_by_a_later_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine down while old segments are removed: their collections go on the index's
    orphan list and a later garbage collection drops them (on a server there is no sweep)."""
    from densa.index import leases
    from densa.index.engines.base import ORPHANS

    encoder = HashingEncoder(jitter=True)
    index = Index.build(BASE, tmp_path / "idx", encoder=encoder, vectors=VectorIndexConfig(engine="qdrant"))
    index = index.add([BASE[0].__class__("new", "a new document about heart attacks")])
    old = _collections(index, "qdrant")
    assert len(old) == 2
    engine = connect(EngineLocation("qdrant"), index.path)
    monkeypatch.setattr(leases, "sweep_embedded", lambda *args: None)  # as on a server

    def down(*args: object) -> None:
        raise RuntimeError("connection refused")

    monkeypatch.setattr(engine, "drop", down)
    index = index.optimize()  # one merged segment
    index = index.delete(["new"])  # nobody holds the old generation now: its folders go, not its collections
    orphans = json.loads((index.path / "engines" / ORPHANS).read_text())
    assert set(orphans) == old and set(orphans.values()) == {"qdrant"}
    assert old < _collections(index, "qdrant")
    monkeypatch.setattr(engine, "drop", type(engine).drop.__get__(engine))
    index = index.add([BASE[0].__class__("newer", "one more")])  # the next commit drops the orphans
    assert not (index.path / "engines" / ORPHANS).exists()
    assert _collections(index, "qdrant").isdisjoint(old) and len(_collections(index, "qdrant")) == 2
    assert Searcher(index, SearchConfig(mode="dense")).hits(["heart attack"], 3)[0]


_SERVERS = {"qdrant": "DENSA_TEST_QDRANT", "milvus": "DENSA_TEST_MILVUS"}


@pytest.mark.parametrize("engine", ENGINES)
def test_an_engine_server_through_updates_and_filters_equals_faiss(tmp_path: Path, engine: str) -> None:
    """The same as the embedded engines' test, against a real server (none here: no network)."""
    import os

    location = os.environ.get(_SERVERS[engine])
    if not location:
        pytest.skip(
            f"no {engine} server: set {_SERVERS[engine]} to its location to run this test, e.g. "
            + ("qdrant+http://localhost:6333" if engine == "qdrant" else "milvus://localhost:19530")
        )
    encoder = HashingEncoder(jitter=True)
    vectors = VectorIndexConfig(kind="hnsw", engine=location, exact_below=0)
    built = Index.build(BASE, tmp_path / "engine", encoder=encoder, batch_size=7, vectors=vectors)
    try:
        updated, live = _apply(built, SEQUENCES["delete-then-optimize"])
        fresh = Index.build(random.Random(0).sample(live, len(live)), tmp_path / "faiss", encoder=encoder)
        _assert_same(_results(updated), _results(fresh))
    finally:  # the server keeps collections after the folder goes: drop this test's
        from densa.index.engines.base import remove_folder

        for segment in sorted((tmp_path / "engine" / "segments").iterdir()):
            remove_folder(segment)
