"""The BM25 channel against a reference implementation of Lucene's BM25 and against bm25s,
alone and across segments with deleted documents."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer

from densa.errors import DensaError
from densa.index.channels.bm25 import (
    Analyzer,
    BM25Channel,
    BM25Config,
    Postings,
    _Part,
    bm25_top_k,
    merge_postings,
)

DOCS = [
    "The heart pumps blood through the arteries.",
    "A heart attack blocks a coronary artery; the heart muscle dies.",
    "Sharks attack swimmers rarely.",
    "Blood pressure rises with age and salt.",
    "Runners watch their heart rate during intervals and races.",
]
MORE = [
    "Heart surgeons replace a valve of the heart.",
    "Salt and sugar in a diet raise blood pressure.",
    "Great white sharks hunt seals near the coast.",
]


def _reference(docs: list[str], query: str, k1: float, b: float) -> dict[int, float]:
    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    (q,) = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    n = len(tokens)
    avgdl = sum(len(d) for d in tokens) / n
    df = Counter(t for d in tokens for t in set(d))
    scores = {}
    for row, doc in enumerate(tokens):
        tf = Counter(doc)
        score = 0.0
        for term in q:
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        if score > 0:
            scores[row] = score
    return scores


def _as_dict(found: object) -> dict[int, float]:
    return {int(i): float(s) for i, s in zip(found.ids, found.scores, strict=True)}  # type: ignore[attr-defined]


def _postings(texts: list[str], config: BM25Config) -> Postings:
    vocabulary: dict[str, int] = {}
    ids, lengths = [], []
    for terms in Analyzer(config).terms(texts):
        ids += [vocabulary.setdefault(t, len(vocabulary)) for t in terms]
        lengths.append(len(terms))
    return Postings.from_ids(list(vocabulary), np.asarray(ids, np.int64), np.asarray(lengths, np.int32))


def _channel(parts: list[tuple[list[str], np.ndarray | None]], config: BM25Config) -> BM25Channel:
    built, first = [], 0
    for texts, live in parts:
        postings = _postings(texts, config)
        lengths = np.asarray(postings.lengths, np.int64)
        keep = np.ones(len(texts), bool) if live is None else live
        built.append(_Part(postings, first, live, int(keep.sum()), int(lengths[keep].sum())))
        first += len(texts)
    return BM25Channel(config, built)


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (0.9, 0.4), (1.2, 1.0)])
def test_scores_match_lucene_bm25(k1: float, b: float) -> None:
    queries = ["heart attack", "blood arteries", "sharks swimmers races", "heart heart blood"]
    found = bm25_top_k(DOCS, queries, 5, BM25Config(k1=k1, b=b))
    for query, got in zip(queries, found, strict=True):
        assert _as_dict(got) == pytest.approx(_reference(DOCS, query, k1, b), rel=1e-5)


def test_scores_equal_bm25s_own() -> None:
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(
        bm25s.tokenize(DOCS + MORE, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    queries = ["heart blood pressure", "sharks attack seals", "salt"]
    tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    for query, ours in zip(tokens, bm25_top_k(DOCS + MORE, queries, 8), strict=True):
        theirs = retriever.get_scores(query)
        assert _as_dict(ours) == pytest.approx({i: float(s) for i, s in enumerate(theirs) if s > 0}, rel=1e-5)


def test_stemming_stop_words_and_no_padding() -> None:
    attacking, stop_words_only = bm25_top_k(DOCS, ["the attacking sharks", "the and a"], 5)
    assert set(_as_dict(attacking)) == {1, 2}  # "attack" stemmed; "the" ignored
    assert len(stop_words_only) == 0  # nothing matches, nothing padded


def test_statistics_over_segments_and_tombstones_equal_a_fresh_build() -> None:
    config = BM25Config()
    live_first = np.array([True, True, False, True, True])  # document 2 deleted
    live_second = np.array([True, False, True])  # document 6 deleted
    channel = _channel([(DOCS, live_first), (MORE, live_second)], config)
    kept = [d for d, keep in zip(DOCS + MORE, [*live_first, *live_second], strict=True) if keep]
    global_rows = [i for i, keep in enumerate([*live_first, *live_second]) if keep]
    for query in ("heart blood", "sharks attack", "salt pressure diet"):
        (got,) = channel.search(channel.encode_queries([query]), 10, [live_first, live_second])
        (fresh,) = bm25_top_k(kept, [query], 10, config)
        expected = {global_rows[i]: s for i, s in _as_dict(fresh).items()}
        assert _as_dict(got) == pytest.approx(expected, rel=1e-6)
    # a filter narrows the results, never the statistics
    only = np.zeros(5, bool)
    only[[0, 1]] = True
    (filtered,) = channel.search(
        channel.encode_queries(["heart blood"]), 10, [only & live_first, np.zeros(3, bool)]
    )
    (full,) = channel.search(channel.encode_queries(["heart blood"]), 10, [live_first, live_second])
    assert _as_dict(filtered) == pytest.approx({i: s for i, s in _as_dict(full).items() if i in (0, 1)})


def test_merge_equals_postings_of_the_kept_documents() -> None:
    config = BM25Config()
    keep_first, keep_second = np.array([True, False, True, True, False]), np.array([False, True, True])
    merged = merge_postings([(_postings(DOCS, config), keep_first), (_postings(MORE, config), keep_second)])
    kept = [d for d, k in zip(DOCS + MORE, [*keep_first, *keep_second], strict=True) if k]
    fresh = _postings(kept, config)
    assert merged.vocabulary() == fresh.vocabulary()
    for name in ("offsets", "rows", "tfs", "lengths"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(fresh, name))


def test_save_load_round_trip_and_damage(tmp_path: Path) -> None:
    config = BM25Config(k1=1.2, b=0.5)
    postings = _postings(DOCS, config)
    postings.save(tmp_path / "bm25", config)
    loaded = Postings.load(tmp_path / "bm25")
    assert loaded.vocabulary() == postings.vocabulary()
    assert loaded.find("heart") >= 0 and loaded.find("nope") == -1
    np.save(tmp_path / "bm25" / "rows.npy", np.zeros(3, np.int32))  # truncated postings
    with pytest.raises(DensaError, match="do not agree"):
        Postings.load(tmp_path / "bm25")
    (tmp_path / "bm25" / "bm25.json").write_text("{not json")
    with pytest.raises(DensaError, match="damaged"):
        Postings.load(tmp_path / "bm25")


def test_cached_term_weights_score_as_fresh_ones_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    config = BM25Config()
    live = np.array([True, True, False, True, True])
    queries = ["heart blood", "sharks attack", "heart heart blood", "salt pressure diet", "absent words"]

    def run(channel: BM25Channel) -> list[dict[int, float]]:
        found = channel.search(channel.encode_queries(queries), 10, [live, None])
        return [_as_dict(f) for f in found]

    expected = run(_channel([(DOCS, live), (MORE, None)], config))  # every term weighed afresh
    warm = _channel([(DOCS, live), (MORE, None)], config)
    assert run(warm) == expected and run(warm) == expected  # the second time from the cache
    assert warm._cached == sum(s.postings for s in warm._cache.values() if s is not None) > 0

    monkeypatch.setattr(BM25Channel, "CACHED_POSTINGS", 3)  # fewer than most terms' postings
    small = _channel([(DOCS, live), (MORE, None)], config)
    for _ in range(2):
        assert run(small) == expected
        assert small._cached <= 3
