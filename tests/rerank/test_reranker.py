"""Cross-encoder reranking with a tiny randomly initialised cross-encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from densa.corpus import read_corpus
from densa.errors import ConfigError, DensaError
from densa.index import Index
from densa.rerank import CrossEncoderReranker, Reranker
from densa.search import SearchConfig
from tests.helpers import TINY, HashingEncoder, build_tiny_bert, search


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
    first_stage = search(index, ["heart attack"], k=4)[0]
    reranked = search(index, ["heart attack"], k=3, config=config, reranker=reranker)[0]
    assert {h.doc_id for h in reranked} <= {h.doc_id for h in first_stage}  # only the top 4 are rescored
    expected = reranker.score([("heart attack", h.title + " " + h.text) for h in first_stage])
    by_ce = sorted(zip(first_stage, expected, strict=True), key=lambda he: -he[1])[:3]
    assert [h.doc_id for h in reranked] == [h.doc_id for h, _ in by_ce]
    assert [h.score for h in reranked] == pytest.approx([s for _, s in by_ce], abs=1e-5)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DensaError, match="cross-encoder folder not found"):
        CrossEncoderReranker(tmp_path / "nope")


def test_rerank_weight_mixes_cross_encoder_and_first_stage_z_scores(
    tmp_path: Path, tiny_cross_encoder: Path
) -> None:
    import statistics

    index = Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())
    reranker = CrossEncoderReranker(tiny_cross_encoder, device="cpu")
    first_stage = search(index, ["heart attack"], k=5)[0]
    ce = reranker.score([("heart attack", h.title + " " + h.text) for h in first_stage])

    def z(values: list[float]) -> list[float]:
        mean, std = statistics.fmean(values), statistics.pstdev(values)
        return [(v - mean) / std for v in values]

    expected = {
        h.doc_id: 0.3 * c + 0.7 * f
        for h, c, f in zip(first_stage, z(ce), z([h.score for h in first_stage]), strict=True)
    }
    config = SearchConfig(mode="dense", rerank_depth=5, rerank_weight=0.3)
    mixed = search(index, ["heart attack"], k=5, config=config, reranker=reranker)[0]
    assert [h.doc_id for h in mixed] == sorted(expected, key=lambda d: -expected[d])
    assert [h.score for h in mixed] == pytest.approx(sorted(expected.values(), reverse=True), abs=1e-5)
    keep = SearchConfig(mode="dense", rerank_depth=5, rerank_weight=0.0)
    unchanged = search(index, ["heart attack"], k=5, config=keep, reranker=reranker)[0]
    assert [h.doc_id for h in unchanged] == [h.doc_id for h in first_stage]
    with pytest.raises(ConfigError, match="rerank_weight"):
        SearchConfig(rerank_weight=1.5)


def test_a_bi_encoder_folder_is_refused_as_a_reranker(minilm_path: Path) -> None:
    with pytest.raises(DensaError, match="is not a cross-encoder"):
        CrossEncoderReranker(minilm_path)


def test_a_colbert_folder_reranks_by_maxsim(tmp_path: Path, tiny_bert: Path) -> None:
    from densa.encode.colbert import ColbertEncoder, maxsim, new_colbert_model
    from densa.rerank import ColbertReranker, load_reranker

    folder = tmp_path / "colbert"
    new_colbert_model(
        str(tiny_bert), dim=16, query_length=16, document_length=48, device="cpu"
    ).save_pretrained(str(folder))
    reranker = load_reranker(folder)
    assert isinstance(reranker, ColbertReranker) and isinstance(reranker, Reranker)
    pairs = [("heart attack", "the heart muscle dies"), ("heart attack", "sharks"), ("sharks", "sharks")]
    encoder = ColbertEncoder(str(folder), device="cpu")
    expected = [
        maxsim(encoder.encode_queries([q]).vectors, encoder.encode_documents([p]).vectors) for q, p in pairs
    ]
    assert reranker.score(pairs) == pytest.approx(expected, rel=1e-5)
    index = Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "ix", encoder=HashingEncoder())
    hits = search(
        index, "heart attack", 5, config=SearchConfig(mode="dense", rerank_depth=5), reranker=reranker
    )[0]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and len(hits) == 5
