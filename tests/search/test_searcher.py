from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from densa.corpus import BeirDataset, read_corpus
from densa.errors import ConfigError
from densa.evaluate import evaluate_dataset
from densa.fuse import FusionConfig, fuse
from densa.index import Index
from densa.index.store import parse_filter
from densa.search import Retriever, SearchConfig, Searcher
from densa.types import Document, Query, rank_items
from tests.helpers import TINY, HashingEncoder, search


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())


def test_bm25_mode_returns_only_keyword_matches(index: Index) -> None:
    hits = search(index, ["shark attack"], k=10, mode="bm25")[0]
    assert [h.doc_id for h in hits] == ["d5"]  # nothing else shares a word: no zero-score padding
    assert hits[0].score > 0


def test_hybrid_fuses_the_dense_and_bm25_rankings(index: Index) -> None:
    query = ["heart rate of athletes"]
    dense = {h.doc_id: h.score for h in search(index, query, k=100)[0]}
    bm25 = {h.doc_id: h.score for h in search(index, query, k=100, mode="bm25")[0]}
    hybrid = search(index, query, k=3, mode="hybrid")[0]
    expected = fuse([dense, bm25], FusionConfig())
    assert [h.doc_id for h in hybrid] == [d for d, _ in rank_items(expected.items())[:3]]
    assert hybrid[0].score == pytest.approx(expected[hybrid[0].doc_id])


def test_searcher_is_a_retriever_and_evaluates(index: Index) -> None:
    searcher = Searcher(index, SearchConfig(mode="hybrid"))
    assert isinstance(searcher, Retriever)
    result, run = evaluate_dataset(searcher, BeirDataset(TINY), "test")
    assert result.metrics["queries"] == 4
    assert set(run.scores) == {"q1", "q2", "q3", "q4"}


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filter_restricts_results_and_never_pads(index: Index, mode: str) -> None:
    hits = search(index, ["heart attack shark"], k=10, mode=mode, filter={"topic": "medical"})[0]  # type: ignore[arg-type]
    assert {h.doc_id for h in hits} <= {"d3", "d4"}  # the only two medical documents
    assert len(hits) <= 2
    assert all(h.metadata["topic"] == "medical" for h in hits)
    run = Searcher(index, SearchConfig(mode=mode)).search([Query("q", "heart")], 10, filter={"topic": "none"})  # type: ignore[arg-type]
    assert run.scores["q"] == {}


def test_filter_on_numbers_and_parsing(tmp_path: Path) -> None:
    docs = [
        Document(f"y{y}", f"report of year {y}", metadata={"year": y, "final": y == 2021})
        for y in range(2018, 2023)
    ]
    index = Index.build(docs, tmp_path / "idx", encoder=HashingEncoder())
    where = parse_filter(["year=2020"])
    assert where == {"year": 2020}
    assert [h.doc_id for h in search(index, ["report"], k=5, filter=where)[0]] == ["y2020"]
    assert [h.doc_id for h in search(index, ["report"], k=5, filter=parse_filter(["final=true"]))[0]] == [
        "y2021"
    ]
    with pytest.raises(ConfigError, match="field=value"):
        parse_filter(["year"])


def test_config_validation(index: Index) -> None:
    with pytest.raises(ConfigError, match="channel names joined by"):
        SearchConfig(mode="dense bm25")
    with pytest.raises(ConfigError):
        SearchConfig(aggregate="mean")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"no channel 'sparse' in this index \(channels: dense, bm25"):
        search(index, ["x"], 3, mode="sparse")


class _LengthReranker:
    """A reranker that prefers shorter passages (the Reranker protocol, no model)."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [-float(len(passage)) for _, passage in pairs]


@pytest.mark.parametrize("rerank", [False, True])
@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_query_batch_makes_at_most_two_document_store_calls(
    index: Index, monkeypatch: pytest.MonkeyPatch, mode: str, rerank: bool
) -> None:
    from densa.index import Snapshot

    calls: list[str] = []
    for name in ("documents", "doc_ids"):
        original = getattr(Snapshot, name)

        def counted(self: Snapshot, rids: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(self, rids)

        monkeypatch.setattr(Snapshot, name, counted)
    index = index.add([Document("extra", "heart attack surgery")])  # two segments to fan out over
    searcher = Searcher(index, SearchConfig(mode=mode), reranker=_LengthReranker() if rerank else None)
    hits = searcher.hits(["heart attack", "shark", "bread yeast", "stock"], 5)
    assert len(calls) <= 2 and any(hits)
    calls.clear()
    searcher.search([Query("q1", "heart attack"), Query("q2", "lava")], 5)
    assert len(calls) <= 2
