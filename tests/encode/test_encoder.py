from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densa.encode import EncoderConfig, SentenceTransformerEncoder
from densa.errors import DensaError

TEXTS = ["Myocardial infarction damages the heart muscle.", "The stock market fell today."]


def test_bundled_model_spec(minilm: SentenceTransformerEncoder) -> None:
    spec = minilm.spec
    assert (spec.pooling, spec.similarity, spec.normalize, spec.dim, spec.max_length) == (
        "mean",
        "cosine",
        True,
        384,
        256,
    )


def test_matches_plain_sentence_transformers(minilm: SentenceTransformerEncoder, minilm_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_path), device="cpu").encode(TEXTS, normalize_embeddings=True)
    ours = minilm.encode_documents(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == (2, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_meaning_beats_words(minilm: SentenceTransformerEncoder) -> None:
    q = minilm.encode_queries(["heart attack"])
    d = minilm.encode_documents(
        ["Myocardial infarction damages the cardiac muscle.", "A shark attack at the beach."]
    )
    scores = (q @ d.T)[0]
    assert scores[0] > scores[1]


def test_prefixes_are_prepended(minilm: SentenceTransformerEncoder) -> None:
    prefixed = SentenceTransformerEncoder(EncoderConfig(query_prefix="query: ", passage_prefix="passage: "))
    np.testing.assert_allclose(
        prefixed.encode_queries(["cats"]), minilm.encode_queries(["query: cats"]), atol=1e-6
    )
    np.testing.assert_allclose(
        prefixed.encode_documents(["cats"]), minilm.encode_documents(["passage: cats"]), atol=1e-6
    )
    assert not np.allclose(prefixed.encode_queries(["cats"]), minilm.encode_queries(["cats"]))


def test_matryoshka_truncation_renormalises(minilm: SentenceTransformerEncoder) -> None:
    small = SentenceTransformerEncoder(EncoderConfig(dim=128))
    vectors = small.encode_documents(TEXTS)
    assert vectors.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    full = minilm.encode_documents(TEXTS)[:, :128]
    np.testing.assert_allclose(vectors, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(DensaError, match="larger than the model's dimension"):
        SentenceTransformerEncoder(EncoderConfig(dim=1000))


def test_counts_texts_over_the_token_limit(minilm: SentenceTransformerEncoder) -> None:
    assert minilm.count_truncated(["short text", "word " * 300, "word " * 250]) == 1


def test_plain_transformers_folder_needs_a_pooling(tiny_bert: Path) -> None:
    with pytest.raises(DensaError, match="choose a pooling"):
        SentenceTransformerEncoder(EncoderConfig(model=str(tiny_bert)))


@pytest.mark.parametrize("pooling", ["cls", "mean", "max", "last-token"])
def test_plain_transformers_folder_with_each_pooling(tiny_bert: Path, pooling: str) -> None:
    encoder = SentenceTransformerEncoder(EncoderConfig(model=str(tiny_bert), pooling=pooling))  # type: ignore[arg-type]
    assert encoder.spec.pooling == pooling and encoder.spec.dim == 32
    assert encoder.encode_documents(TEXTS).shape == (2, 32)


def test_pooling_choice_changes_vectors(tiny_bert: Path) -> None:
    cls = SentenceTransformerEncoder(EncoderConfig(model=str(tiny_bert), pooling="cls"))
    mean = SentenceTransformerEncoder(EncoderConfig(model=str(tiny_bert), pooling="mean"))
    assert not np.allclose(cls.encode_documents(TEXTS), mean.encode_documents(TEXTS))


def test_dot_similarity_keeps_raw_norms(tiny_bert: Path) -> None:
    encoder = SentenceTransformerEncoder(
        EncoderConfig(model=str(tiny_bert), pooling="mean", similarity="dot")
    )
    assert not encoder.spec.normalize
    norms = np.linalg.norm(encoder.encode_documents(TEXTS), axis=1)
    assert not np.allclose(norms, 1.0)


def test_separate_towers_encode_queries_with_the_query_model(tiny_bert: Path, tiny_bert_other: Path) -> None:
    shared = SentenceTransformerEncoder(EncoderConfig(model=str(tiny_bert), pooling="cls"))
    towers = SentenceTransformerEncoder(
        EncoderConfig(model=str(tiny_bert), query_model=str(tiny_bert_other), pooling="cls")
    )
    np.testing.assert_allclose(towers.encode_documents(TEXTS), shared.encode_documents(TEXTS), atol=1e-6)
    assert not np.allclose(towers.encode_queries(TEXTS), shared.encode_queries(TEXTS))
    assert towers.spec.query_fingerprint is not None
    assert towers.spec.query_fingerprint != towers.spec.fingerprint


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(DensaError, match="model folder not found"):
        SentenceTransformerEncoder(EncoderConfig(model=str(tmp_path / "nope")))
