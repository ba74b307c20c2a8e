from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from densa.fuse import FusionConfig
from densa.index import BM25Config, DenseChannel, Index
from densa.index.vectors import VectorIndexConfig
from densa.search import SearchConfig, Searcher
from densa.search.calibrate import (
    CALIBRATION_FILE,
    Calibration,
    inverse_cloze,
    load_or_measure,
    measure,
    sample_documents,
)
from densa.types import Document
from tests.helpers import HashingEncoder

_TOPICS = [
    "heart cardiac artery blood pressure vessel",
    "shark ocean fish reef water coral",
    "bread yeast flour oven baking dough",
    "stock market share price trading investor",
    "planet orbit star telescope galaxy moon",
    "soil crop farm harvest wheat seed",
    "virus infection vaccine immune cell antibody",
    "engine fuel piston car motor gear",
]


def _corpus(n: int = 80, seed: int = 0) -> list[Document]:
    """Documents of four sentences, each drawing words from the document's own topic and a
    few shared filler words, so a sentence cut out of a document points back to its topic."""
    rng = random.Random(seed)
    filler = ["the", "a", "of", "and", "with", "in", "for", "study", "shows", "result"]
    docs = []
    for i in range(n):
        topic = [*_TOPICS[i % len(_TOPICS)].split(), f"item{i}", f"code{i}"]
        sentences = [" ".join(rng.choices(topic, k=5) + rng.choices(filler, k=3)) + "." for _ in range(4)]
        docs.append(Document(f"doc{i:03d}", " ".join(sentences)))
    return docs


class _NoiseEncoder(HashingEncoder):
    """A dense encoder that knows nothing: each text maps to its own random unit vector."""

    def _vectors(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.stack(
            [
                np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).standard_normal(
                    self.spec.dim
                )
                for t in texts
            ]
        ).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _two_channels(tmp_path: Path, docs: list[Document], name: str = "idx") -> Index:
    channels = {
        "dense": DenseChannel(_NoiseEncoder(name="noise"), VectorIndexConfig()),
        "bm25": BM25Config(),
    }
    return Index.build(docs, tmp_path / name, channels=channels)


def test_inverse_cloze_cuts_one_sentence_out_of_each_document() -> None:
    docs = _corpus(5)
    for doc, (query, rest) in zip(docs, inverse_cloze(docs), strict=True):
        assert query in doc.text and query.endswith(".")
        assert rest.count(".") == doc.text.count(".") - 1  # the other three sentences stay
        assert sorted((query + " " + rest).split()) == sorted(doc.text.split())


def test_calibration_trusts_the_channel_that_finds_the_answers(tmp_path: Path) -> None:
    index = _two_channels(tmp_path, _corpus())
    calibration = measure(index, queries=60)
    assert calibration.queries == 60
    # BM25 finds a cut sentence's document; random vectors do not
    assert (
        calibration.mrr(["bm25"], [1.0], "zscore") > 0.5 > 0.2 > calibration.mrr(["dense"], [1.0], "zscore")
    )
    chosen = calibration.choose(["dense", "bm25"])
    assert chosen.method == "weighted" and chosen.weights is not None
    assert chosen.weights["bm25"] > 0.5 > chosen.weights["dense"]
    # the choice is the best of its grid
    best = calibration.mrr(
        ["dense", "bm25"], [chosen.weights["dense"], chosen.weights["bm25"]], chosen.normalization or "zscore"
    )
    assert best >= calibration.mrr(["dense", "bm25"], [0.5, 0.5], "zscore")


def test_choose_breaks_ties_toward_equal_weights() -> None:
    # two channels that rank every answer first: every weight scores MRR 1
    ids = np.array([[0, 1], [1, 0], [2, 0]])
    scores = np.array([[2.0, 1.0]] * 3)
    calibration = Calibration({"a": {}, "b": {}}, {"a": ids, "b": ids}, {"a": scores, "b": scores})
    chosen = calibration.choose(["a", "b"])
    assert chosen.weights == {"a": 0.5, "b": 0.5} and chosen.normalization == "zscore"


def test_hybrid_search_measures_once_and_stores_the_result(tmp_path: Path) -> None:
    index = _two_channels(tmp_path, _corpus())
    searcher = Searcher(index, SearchConfig(mode="hybrid"))
    fusion = searcher.fusion()
    assert (index.path / CALIBRATION_FILE).is_file()
    assert fusion.weights is not None and fusion.weights["bm25"] > fusion.weights["dense"]
    stored = Calibration.load(index.path)
    assert stored is not None and stored.covers(index, ["dense", "bm25"])
    assert stored.choose(["dense", "bm25"]) == fusion
    # the fused ranking is the weighted fusion with those weights
    query = ["shark ocean reef"]
    explicit = Searcher(index, SearchConfig(mode="hybrid", fusion=fusion)).hits(query, 5)[0]
    measured = Searcher(index, SearchConfig(mode="hybrid")).hits(query, 5)[0]
    assert [(h.doc_id, h.score) for h in measured] == [(h.doc_id, h.score) for h in explicit]


def test_given_weights_and_other_methods_are_not_measured(tmp_path: Path) -> None:
    index = _two_channels(tmp_path, _corpus())
    given = Searcher(
        index, SearchConfig(mode="hybrid", fusion=FusionConfig(weights={"dense": 0.2, "bm25": 0.8}))
    )
    assert given.fusion().weights == {"dense": 0.2, "bm25": 0.8}
    assert (
        Searcher(index, SearchConfig(mode="hybrid", fusion=FusionConfig(method="rrf"))).fusion().method
        == "rrf"
    )
    assert not (index.path / CALIBRATION_FILE).exists()


def test_a_new_channel_is_measured_again(tmp_path: Path) -> None:
    index = _two_channels(tmp_path, _corpus())
    first = load_or_measure(index, ["dense", "bm25"])
    assert first is not None
    index = index.add_channel("words", DenseChannel(HashingEncoder(dim=256), VectorIndexConfig()))
    assert not first.covers(index, ["dense", "bm25", "words"])
    again = load_or_measure(index, ["dense", "bm25", "words"])
    assert again is not None and again.covers(index, ["dense", "bm25", "words"])
    weights = again.choose(list(index.channels)).weights
    assert weights is not None and weights["dense"] <= 0.1  # noise stays out of a three-way fusion


def test_a_damaged_calibration_file_is_measured_again(tmp_path: Path) -> None:
    index = _two_channels(tmp_path, _corpus())
    (index.path / CALIBRATION_FILE).write_bytes(b"not an npz file")
    assert Calibration.load(index.path) is None
    fusion = Searcher(index, SearchConfig(mode="hybrid")).fusion()
    assert fusion.weights is not None
    assert Calibration.load(index.path) is not None


def test_the_sample_does_not_depend_on_the_order_documents_came_in(tmp_path: Path) -> None:
    docs = _corpus()
    fresh = _two_channels(tmp_path, docs, "fresh")
    updated = _two_channels(tmp_path, docs[40:], "updated").add(docs[:40])
    assert [d.id for d in sample_documents(fresh, 30)] == [d.id for d in sample_documents(updated, 30)]
    assert measure(fresh, queries=60).choose(["dense", "bm25"]) == measure(updated, queries=60).choose(
        ["dense", "bm25"]
    )


def test_a_small_corpus_fuses_with_equal_weights(tmp_path: Path) -> None:
    index = _two_channels(tmp_path, _corpus(20))
    fusion = Searcher(index, SearchConfig(mode="hybrid")).fusion()
    assert fusion == FusionConfig(method="weighted", normalization="zscore")
    assert not (index.path / CALIBRATION_FILE).exists()


@pytest.mark.parametrize("normalization", ["minmax", "zscore"])
def test_a_given_normalisation_is_kept(tmp_path: Path, normalization: str) -> None:
    index = _two_channels(tmp_path, _corpus())
    config = SearchConfig(mode="hybrid", fusion=FusionConfig(normalization=normalization))  # type: ignore[arg-type]
    assert Searcher(index, config).fusion().normalization == normalization
