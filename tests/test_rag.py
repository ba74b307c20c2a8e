from __future__ import annotations

from pathlib import Path

import pytest

from densa.corpus import read_corpus
from densa.demo import sample_dataset_path
from densa.encode import SentenceTransformerEncoder
from densa.index import Index
from densa.rag import assemble_context, build_context
from densa.types import Hit


def words(text: str) -> int:
    return len(text.split())


HITS = [
    Hit("a", 0.9, 1, "A", "one two three four five six seven eight"),
    Hit("b", 0.8, 2, "B", "long " * 50),
    Hit("c", 0.7, 3, "", "short text"),
]


def test_passages_in_rank_order_skipping_what_does_not_fit() -> None:
    ctx = assemble_context("q?", HITS, max_tokens=20, count_tokens=words)
    assert [c.doc_id for c in ctx.citations] == ["a", "c"]
    assert [c.number for c in ctx.citations] == [1, 2]
    assert ctx.context == "[1] A (a)\none two three four five six seven eight\n\n[2] (c)\nshort text"
    assert ctx.tokens == words("[1] A (a)\none two three four five six seven eight") + words(
        "[2] (c)\nshort text"
    )
    assert ctx.tokens <= 20


def test_a_first_passage_over_budget_is_cut_not_dropped() -> None:
    ctx = assemble_context("q?", [HITS[1]], max_tokens=10, count_tokens=words)
    assert [c.doc_id for c in ctx.citations] == ["b"]
    assert ctx.tokens <= 10 and ctx.context.startswith("[1] B (b)")
    with pytest.raises(ValueError):
        assemble_context("q?", HITS, max_tokens=0, count_tokens=words)


def test_build_context_on_a_real_index(tmp_path: Path, minilm: SentenceTransformerEncoder) -> None:
    index = Index.build(read_corpus(sample_dataset_path() / "corpus.jsonl"), tmp_path / "idx", encoder=minilm)
    ctx = build_context(index, "what happens in a heart attack?", k=3, max_tokens=120)
    assert ctx.citations[0].doc_id == "med-mi"
    assert 0 < ctx.tokens <= 120
    assert "Question: what happens in a heart attack?" in ctx.prompt
