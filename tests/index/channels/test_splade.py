"""The splade channel: SPLADE pooling by hand, the head initialised from the input embeddings,
the impact index against brute-force dot products, updates and merges against a fresh build,
the inference-free variant, and an index saved and opened again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densa.corpus import read_corpus
from densa.encode.splade import SpladeEncoder, is_splade_model, new_splade_model
from densa.index import BM25Config, Index
from densa.index.channels.splade import ImpactPart, SpladeChannel
from densa.types import Document
from tests.helpers import search

SAMPLES = Path(__file__).parents[3] / "src" / "densa" / "samples" / "corpus.jsonl"
QUERIES = ["heart attack symptoms", "how do sharks hunt", "blood pressure and salt", "volcano eruption"]


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return list(read_corpus(SAMPLES))


@pytest.fixture(scope="module")
def tiny_splade(tiny_bert: Path, docs: list[Document], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-splade")
    model, notes = new_splade_model(
        str(tiny_bert), texts=[d.full_text for d in docs], terms=40, max_length=64, device="cpu"
    )
    assert "no MLM head" in notes[0]
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def encoder(tiny_splade: Path) -> SpladeEncoder:
    return SpladeEncoder(str(tiny_splade), device="cpu")


def test_pooling_is_max_over_tokens_of_log1p_relu_of_the_mlm_logits(encoder: SpladeEncoder) -> None:
    import torch

    text = "the heart pumps blood"
    transformer = encoder.model[0]
    batch = transformer.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        logits = transformer.auto_model(**batch).logits[0]  # (tokens, vocabulary)
    by_hand = torch.log1p(torch.relu(logits)).max(dim=0).values.numpy()
    got = encoder.encode_documents([text]).toarray()[0]
    np.testing.assert_allclose(got, by_hand, rtol=1e-4, atol=1e-5)


def test_a_head_from_the_input_embeddings_is_sparse_and_skips_special_tokens(
    encoder: SpladeEncoder, docs: list[Document], tiny_splade: Path
) -> None:
    assert is_splade_model(tiny_splade)
    weights = encoder.encode_documents([d.full_text for d in docs])
    per_doc = np.diff(weights.indptr)
    assert 10 < np.median(per_doc) < 120  # about the 40 asked for, far from the 30,522 of the vocabulary
    vocab = encoder.tokenizer.get_vocab()
    specials = [vocab[t] for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[unused0]")]
    assert weights[:, specials].nnz == 0


def test_impact_index_equals_brute_force_dot_products(
    encoder: SpladeEncoder, docs: list[Document], tmp_path: Path
) -> None:
    index = Index.build(docs, tmp_path / "ix", channels={"splade": SpladeChannel(encoder)})
    weights = (
        encoder.encode_documents([d.full_text for d in docs]).toarray().astype(np.float16).astype(np.float32)
    )
    for query in QUERIES:
        q = encoder.encode_queries([query]).toarray()[0]
        expected = weights @ q
        best = np.argsort(-expected, kind="stable")[:5]
        hits = search(index, query, 5, mode="splade")[0]
        assert {h.doc_id for h in hits} == {docs[i].id for i in best if expected[i] > 0}
        np.testing.assert_allclose(sorted((h.score for h in hits), reverse=True), expected[best], rtol=1e-4)


def test_updates_and_merges_equal_a_fresh_build(
    encoder: SpladeEncoder, docs: list[Document], tmp_path: Path
) -> None:
    channel = {"splade": SpladeChannel(encoder, max_terms=30)}
    gone = docs[5].id
    updated = Index.build(docs[:20], tmp_path / "u", channels=channel).add(docs[20:], merge=False)
    updated = updated.delete([gone], merge=False)
    fresh = Index.build([d for d in docs if d.id != gone], tmp_path / "f", channels=channel)
    merged = updated.optimize()
    assert len(updated.manifest.segments) == 2 and len(merged.manifest.segments) == 1
    for query in QUERIES:
        want = search(fresh, query, 8, mode="splade")[0]
        for index in (updated, merged):
            got = search(index, query, 8, mode="splade")[0]
            assert [(h.doc_id, h.score) for h in got] == [(h.doc_id, h.score) for h in want]
    assert all(
        n <= 30
        for n in np.diff(
            ImpactPart.load(merged.snapshot.views[0].folder / "splade").postings.T.tocsr().indptr
        )
    )


def test_saved_index_opens_and_fuses(encoder: SpladeEncoder, docs: list[Document], tmp_path: Path) -> None:
    built = Index.build(
        docs, tmp_path / "ix", channels={"splade": SpladeChannel(encoder), "bm25": BM25Config()}
    )
    before = search(built, QUERIES, 5, mode="splade")
    opened = Index.open(tmp_path / "ix")  # loads the model from the folder the manifest names
    assert search(opened, QUERIES, 5, mode="splade") == before
    assert all(len(hits) == 5 for hits in search(opened, QUERIES, 5, mode="splade+bm25"))
    stats = opened.manifest.segments[0].parts["splade"]
    assert stats["weights"] > len(docs) and stats["bytes"] > 0


def test_inference_free_queries_are_a_lookup(tiny_bert: Path, docs: list[Document], tmp_path: Path) -> None:
    model, notes = new_splade_model(
        str(tiny_bert),
        texts=[d.full_text for d in docs],
        terms=40,
        max_length=64,
        inference_free=True,
        device="cpu",
    )
    assert "inference-free" in notes[-1]
    model.save_pretrained(str(tmp_path / "free"))
    encoder = SpladeEncoder(str(tmp_path / "free"), device="cpu")
    query = encoder.encode_queries(["heart heart blood"])
    vocab = encoder.tokenizer.get_vocab()
    assert set(query.indices.tolist()) == {vocab["heart"], vocab["blood"]}  # only the query's own tokens
    index = Index.build(docs, tmp_path / "ix", channels={"splade": SpladeChannel(encoder)})
    weights = encoder.encode_documents([docs[0].full_text])
    top_term = encoder.tokenizer.convert_ids_to_tokens(int(weights.indices[np.argmax(weights.data)]))
    hits = search(index, top_term, 3, mode="splade")[0]
    assert docs[0].id in {h.doc_id for h in hits} and all(h.score > 0 for h in hits)
