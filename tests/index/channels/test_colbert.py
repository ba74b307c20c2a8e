"""The colbert channel: MaxSim, the residual codec, PLAID candidates against exhaustive MaxSim,
updates against a fresh build, and an index saved and opened again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densa.corpus import read_corpus
from densa.encode.colbert import ColbertEncoder, TokenVectors, is_colbert_model, maxsim, new_colbert_model
from densa.errors import ConfigError
from densa.index import BM25Config, Index
from densa.index.channels.colbert import ColbertChannel, ResidualCodec, TokenPart, centroid_count
from densa.types import Document
from tests.helpers import search

SAMPLES = Path(__file__).parents[3] / "src" / "densa" / "samples" / "corpus.jsonl"
QUERIES = ["heart attack symptoms", "how do sharks hunt", "blood pressure and salt", "volcano eruption"]


@pytest.fixture(scope="module")
def tiny_colbert(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ColBERT model (the tiny BERT, 16-d tokens), saved and loadable."""
    folder = tmp_path_factory.mktemp("tiny-colbert")
    new_colbert_model(
        str(tiny_bert), dim=16, query_length=16, document_length=64, device="cpu"
    ).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def encoder(tiny_colbert: Path) -> ColbertEncoder:
    return ColbertEncoder(str(tiny_colbert), device="cpu")


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return list(read_corpus(SAMPLES))


def test_maxsim_on_a_hand_computed_example() -> None:
    query = np.array([[1, 0, 0], [0, 0.6, 0.8]], np.float32)
    document = np.array([[0.8, 0.6, 0], [0, 0, 1], [0, 1, 0]], np.float32)
    # token 1: max(0.8, 0, 0) = 0.8; token 2: max(0.36, 0.8, 0.6) = 0.8
    assert maxsim(query, document) == pytest.approx(1.6)
    assert maxsim(query, document[:0]) == 0.0


def test_encoder_expands_queries_and_drops_punctuation(encoder: ColbertEncoder, tiny_colbert: Path) -> None:
    assert is_colbert_model(tiny_colbert)
    queries = encoder.encode_queries(["heart?", "a much longer question about the heart"])
    assert queries.lengths.tolist() == [16, 16]  # padded with [MASK] to the query length
    with_punctuation = encoder.encode_documents(["heart, lungs; blood!"])
    without = encoder.encode_documents(["heart lungs blood"])
    assert with_punctuation.lengths.tolist() == without.lengths.tolist()
    norms = np.linalg.norm(queries.vectors, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    assert encoder.spec.dim == 16


def test_codec_round_trip_improves_with_bits() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    errors = {}
    for nbits in (1, 2, 4, 8):
        codec = ResidualCodec.train(vectors, nbits)
        codes, packed = codec.compress(vectors)
        assert packed.shape == (4000, 16 * nbits // 8)
        back = codec.decompress(codes, packed)
        errors[nbits] = float(np.mean(np.sum(back * vectors, axis=1)))
    assert errors[1] < errors[2] < errors[4] < errors[8]
    assert errors[8] > 0.99  # nearly exact at 8 bits
    assert centroid_count(4000) == 100  # 8 sqrt(4000) = 506 -> 256, capped at 4000 / 40 tokens a centroid
    assert centroid_count(10**6) == 4096 and centroid_count(30) == 1
    with pytest.raises(ConfigError):
        ResidualCodec.train(vectors[:, :12].copy(), 1)  # 12 dims do not pack into bytes of 8


def _exact_top(encoder: ColbertEncoder, texts: list[str], query: str, k: int) -> list[int]:
    docs = encoder.encode_documents(texts)
    q = encoder.encode_queries([query])[0]
    scores = np.array([maxsim(q, docs[i]) for i in range(len(texts))])
    return list(np.argsort(-scores, kind="stable")[:k])


def test_plaid_search_finds_what_exhaustive_maxsim_finds(
    encoder: ColbertEncoder, docs: list[Document], tmp_path: Path
) -> None:
    index = Index.build(
        docs, tmp_path / "ix", channels={"colbert": ColbertChannel(encoder, nbits=4, nprobe=4, candidates=8)}
    )
    ids = [d.id for d in docs]
    texts = [d.full_text for d in docs]
    recalls = []
    for query in QUERIES:
        want = {ids[i] for i in _exact_top(encoder, texts, query, 5)}
        got = {h.doc_id for h in search(index, query, 5, mode="colbert")[0]}
        recalls.append(len(want & got) / 5)
    assert np.mean(recalls) >= 0.8


def _scores(index: Index, query: str) -> dict[str, float]:
    return {h.doc_id: h.score for h in search(index, query, 100, mode="colbert")[0]}


def test_updates_score_as_a_fresh_build(
    encoder: ColbertEncoder, docs: list[Document], tmp_path: Path
) -> None:
    """Each segment has its own codebook, so an updated index's scores equal a fresh build's up to
    the quantisation (8 bits here: within 1%); a random model's scores are too close together to
    compare orders, so every document's score is compared."""
    channel = {"colbert": ColbertChannel(encoder, nbits=8, candidates=100)}
    first, rest = docs[:20], docs[20:]
    gone = docs[3].id
    built = Index.build(first, tmp_path / "updated", channels=channel)
    updated = built.add(rest, merge=False).delete([gone], merge=False)
    fresh = Index.build([d for d in docs if d.id != gone], tmp_path / "fresh", channels=channel)
    assert len(updated.manifest.segments) == 2
    merged = updated.optimize()  # one segment again, merged from the stored codes (no model run)
    assert len(merged.manifest.segments) == 1
    for query in QUERIES:
        want = _scores(fresh, query)
        assert len(want) == len(docs) - 1 and gone not in want
        for index in (updated, merged):
            got = _scores(index, query)
            assert got.keys() == want.keys()
            np.testing.assert_allclose([got[d] for d in want], list(want.values()), rtol=0.01)


def test_saved_index_opens_and_searches_the_same(
    encoder: ColbertEncoder, docs: list[Document], tmp_path: Path
) -> None:
    built = Index.build(
        docs, tmp_path / "ix", channels={"colbert": ColbertChannel(encoder), "bm25": BM25Config()}
    )
    before = search(built, QUERIES, 5, mode="colbert")
    opened = Index.open(tmp_path / "ix")  # loads the model from the folder the manifest names
    assert search(opened, QUERIES, 5, mode="colbert") == before
    fused = search(opened, QUERIES, 5, mode="colbert+bm25")
    assert all(len(hits) == 5 for hits in fused)
    stats = opened.manifest.segments[0].parts["colbert"]
    assert stats["tokens"] > len(docs) and stats["bytes"] > 0


def test_filters_and_empty_parts(encoder: ColbertEncoder, docs: list[Document], tmp_path: Path) -> None:
    index = Index.build(docs, tmp_path / "ix", channels={"colbert": ColbertChannel(encoder, candidates=4)})
    part = TokenPart.load(index.snapshot.views[0].folder / "colbert")
    query = encoder.encode_queries(["heart"])
    allowed = np.zeros(len(part), bool)
    allowed[[2, 7]] = True
    chosen = part.candidates(np.ascontiguousarray(query.vectors), allowed, nprobe=2, keep=4)
    assert set(chosen.tolist()) <= {2, 7}
    empty = TokenPart.build(TokenVectors(np.zeros((0, 16), np.float32), np.zeros(3, np.int64)), 2)
    assert len(empty.candidates(np.ascontiguousarray(query.vectors), None, 2, 4)) == 0
