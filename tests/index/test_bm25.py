"""BM25 scores against a reference implementation of Lucene's BM25 formula."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import bm25s
import pytest
import Stemmer

from densa.index import BM25Config, BM25Index

DOCS = [
    "The heart pumps blood through the arteries.",
    "A heart attack blocks a coronary artery; the heart muscle dies.",
    "Sharks attack swimmers rarely.",
    "Blood pressure rises with age and salt.",
    "Runners watch their heart rate during intervals and races.",
]
RIDS = [10, 11, 12, 13, 14]


def _reference(query: str, k1: float, b: float) -> dict[int, float]:
    stemmer = Stemmer.Stemmer("english")
    docs = bm25s.tokenize(DOCS, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    (q,) = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    df = Counter(t for d in docs for t in set(d))
    scores = {}
    for rid, tokens in zip(RIDS, docs, strict=True):
        tf = Counter(tokens)
        score = 0.0
        for term in set(q):
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(tokens) / avgdl))
        if score > 0:
            scores[rid] = score
    return scores


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (0.9, 0.4), (1.2, 1.0)])
def test_scores_match_lucene_bm25(k1: float, b: float) -> None:
    index = BM25Index.build(RIDS, DOCS, BM25Config(k1=k1, b=b))
    for query in ("heart attack", "blood arteries", "sharks swimmers races"):
        (got,) = index.search([query], k=5)
        assert got == pytest.approx(_reference(query, k1, b), rel=1e-5)


def test_stemming_and_stop_words() -> None:
    index = BM25Index.build(RIDS, DOCS, BM25Config())
    (hits,) = index.search(["the attacking sharks"], k=5)
    assert set(hits) == {11, 12}  # "attack" stemmed; "the" ignored
    (none,) = index.search(["the and a"], k=5)
    assert none == {}  # only stop words: nothing matches, nothing padded


def test_allowed_rows_and_save_load_round_trip(tmp_path: Path) -> None:
    index = BM25Index.build(RIDS, DOCS, BM25Config(k1=1.2, b=0.5))
    (filtered,) = index.search(["heart"], k=5, allowed={11, 13})
    assert set(filtered) == {11}
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.config == BM25Config(k1=1.2, b=0.5)
    assert loaded.search(["heart blood"], 5) == index.search(["heart blood"], 5)
