"""Cross-encoder reranking with a tiny randomly initialised cross-encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from densa.corpus import read_corpus
from densa.errors import DensaError
from densa.index import Index
from densa.rerank import CrossEncoderReranker, Reranker
from densa.search import SearchConfig
from tests.helpers import TINY, HashingEncoder, build_tiny_bert


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-ce"), minilm_path, classifier=True)


def test_loads_a_cross_encoder_folder_and_scores_pairs(tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    reranker = CrossEncoderReranker(tiny_cross_encoder, device="cpu")
    assert isinstance(reranker, Reranker)
    pairs = [("heart attack", "myocardial infarction"), ("heart attack", "stock market")]
    reference = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict(pairs)
    assert reranker.score(pairs) == pytest.approx([float(s) for s in reference], abs=1e-5)
    assert reranker.score([]) == []


def test_reranking_reorders_the_top_candidates_by_cross_encoder_score(
    tmp_path: Path, tiny_cross_encoder: Path
) -> None:
    index = Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())
    reranker = CrossEncoderReranker(tiny_cross_encoder, device="cpu")
    config = SearchConfig(mode="dense", rerank_depth=4)
    first_stage = index.search(["heart attack"], k=4)[0]
    reranked = index.search(["heart attack"], k=3, config=config, reranker=reranker)[0]
    assert {h.doc_id for h in reranked} <= {h.doc_id for h in first_stage}  # only the top 4 are rescored
    expected = reranker.score([("heart attack", h.title + " " + h.text) for h in first_stage])
    by_ce = sorted(zip(first_stage, expected, strict=True), key=lambda he: -he[1])[:3]
    assert [h.doc_id for h in reranked] == [h.doc_id for h, _ in by_ce]
    assert [h.score for h in reranked] == pytest.approx([s for _, s in by_ce], abs=1e-5)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DensaError, match="cross-encoder folder not found"):
        CrossEncoderReranker(tmp_path / "nope")
