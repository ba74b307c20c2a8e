from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from densa.corpus import read_corpus
from densa.errors import DensaError, IndexMismatchError, InputError
from densa.index import BM25Config, Index, VectorIndexConfig
from densa.types import Document
from tests.helpers import TINY, HashingEncoder, search


def _build(path: Path, encoder: HashingEncoder, **kwargs: object) -> Index:
    return Index.build(read_corpus(TINY / "corpus.jsonl"), path, encoder=encoder, **kwargs)  # type: ignore[arg-type]


def test_build_writes_manifest_store_and_vectors(tmp_path: Path, hashing: HashingEncoder) -> None:
    index = _build(tmp_path / "idx", hashing)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert list(manifest["channels"]) == ["dense", "bm25"]
    dense = manifest["channels"]["dense"]
    assert dense["kind"] == "dense"
    encoder = dense["settings"]["encoder"]
    assert encoder["model"] == "hashing" and encoder["dim"] == 64
    assert encoder["pooling"] == "mean" and encoder["normalize"] is True and encoder["similarity"] == "cosine"
    assert (encoder["query_prefix"], encoder["passage_prefix"]) == ("", "")
    assert dense["settings"]["vectors"]["kind"] == "flat"
    assert manifest["channels"]["bm25"] == {"kind": "bm25", "settings": BM25Config().to_dict()}
    assert manifest["counts"]["documents"] == 10 and manifest["counts"]["segments"] == 1
    assert manifest["densa_version"] and manifest["format"] == 2
    (segment,) = manifest["segments"]
    assert (segment["rows"], segment["passages"], segment["deleted"]) == (10, 10, 0)
    folder = tmp_path / "idx" / "segments" / segment["name"]
    assert (folder / "docs.sqlite").is_file() and (folder / "passages.npy").is_file()
    assert (folder / "dense" / "vectors.faiss").is_file() and (folder / "bm25" / "offsets.npy").is_file()
    assert (tmp_path / "idx" / "commits" / f"gen-{manifest['generation']:06d}.json").is_file()
    assert len(index) == 10


def test_round_trip_open_returns_same_results(tmp_path: Path, hashing: HashingEncoder) -> None:
    built = _build(tmp_path / "idx", hashing)
    before = search(built, ["shark attack surfer", "lava and ash"], k=3)
    opened = Index.open(tmp_path / "idx", encoder=HashingEncoder())
    after = search(opened, ["shark attack surfer", "lava and ash"], k=3)
    assert [[h.doc_id for h in hs] for hs in after] == [[h.doc_id for h in hs] for hs in before]
    assert after[0][0].doc_id == "d5"
    assert after[1][0].doc_id == "d7"
    top = after[0][0]
    assert (top.rank, top.title, top.metadata) == (1, "Shark attack", {"topic": "other"})
    assert after[0][0].score >= after[0][1].score >= after[0][2].score
    assert opened.get("d9") is not None and opened.get("d9").title == "Moon"  # type: ignore[union-attr]


def test_search_scores_are_cosine_similarities(tmp_path: Path, hashing: HashingEncoder) -> None:
    index = _build(tmp_path / "idx", hashing)
    hits = search(index, ["yeast bread dough"], k=10)[0]
    doc = index.get(hits[0].doc_id)
    assert doc is not None
    expected = float(
        (hashing.encode_queries(["yeast bread dough"]) @ hashing.encode_documents([doc.full_text]).T)[0, 0]
    )
    assert hits[0].score == pytest.approx(expected, abs=1e-5)


def test_k_larger_than_corpus_returns_everything_once(tmp_path: Path, hashing: HashingEncoder) -> None:
    hits = search(_build(tmp_path / "idx", hashing), ["anything"], k=50)[0]
    assert sorted(h.doc_id for h in hits) == sorted(f"d{i}" for i in range(1, 11))


def test_hnsw_agrees_with_exact_search_on_a_small_corpus(tmp_path: Path, hashing: HashingEncoder) -> None:
    flat = _build(tmp_path / "flat", hashing)
    hnsw = _build(tmp_path / "hnsw", hashing, vectors=VectorIndexConfig(kind="hnsw", hnsw_m=8))
    assert hnsw.channels["dense"].settings["vectors"]["kind"] == "hnsw"
    queries = ["heart rate running", "stock market interest", "python syntax"]
    for a, b in zip(search(flat, queries, k=3), search(hnsw, queries, k=3), strict=True):
        assert a[0].doc_id == b[0].doc_id
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)
    reopened = Index.open(tmp_path / "hnsw", encoder=HashingEncoder())
    assert search(reopened, queries, 1)[0][0].doc_id == search(flat, queries, 1)[0][0].doc_id == "d4"


def test_opening_with_another_encoder_is_a_clear_error(tmp_path: Path, hashing: HashingEncoder) -> None:
    _build(tmp_path / "idx", hashing)
    with pytest.raises(IndexMismatchError, match="built with another encoder"):
        Index.open(tmp_path / "idx", encoder=HashingEncoder(name="other"))
    with pytest.raises(IndexMismatchError, match="dim"):
        Index.open(tmp_path / "idx", encoder=HashingEncoder(dim=32))


def test_opening_with_another_model_folder_is_a_clear_error(
    tmp_path: Path, hashing: HashingEncoder, tiny_bert: Path
) -> None:
    _build(tmp_path / "idx", hashing)
    with pytest.raises(IndexMismatchError, match="is a different model"):
        Index.open(tmp_path / "idx", model=str(tiny_bert))


def test_existing_index_is_not_overwritten_by_default(tmp_path: Path, hashing: HashingEncoder) -> None:
    _build(tmp_path / "idx", hashing)
    with pytest.raises(DensaError, match="already exists"):
        _build(tmp_path / "idx", hashing)
    rebuilt = Index.build(
        [Document("only", "one document")], tmp_path / "idx", encoder=hashing, overwrite=True
    )
    assert len(rebuilt) == 1
    (segment,) = rebuilt.manifest.segments  # the replaced index's segment is gone (no reader held it)
    assert [p.name for p in (tmp_path / "idx" / "segments").iterdir()] == [segment.name]


def test_failed_build_leaves_the_existing_index_intact(tmp_path: Path, hashing: HashingEncoder) -> None:
    _build(tmp_path / "idx", hashing)
    manifest_before = (tmp_path / "idx" / "manifest.json").read_text()

    def docs() -> Iterator[Document]:
        yield Document("new1", "fresh text")
        raise InputError("corpus.jsonl", 2, "malformed JSON")

    with pytest.raises(InputError):
        Index.build(docs(), tmp_path / "idx", encoder=hashing, overwrite=True, batch_size=1)
    assert (tmp_path / "idx" / "manifest.json").read_text() == manifest_before
    assert len(list((tmp_path / "idx" / "segments").iterdir())) == 1
    reopened = Index.open(tmp_path / "idx", encoder=HashingEncoder())
    assert len(reopened) == 10 and reopened.get("new1") is None


def test_failed_first_build_leaves_no_folder(tmp_path: Path, hashing: HashingEncoder) -> None:
    with pytest.raises(InputError):
        Index.build(read_corpus([{"_id": "a", "text": ""}]), tmp_path / "idx", encoder=hashing)
    assert not (tmp_path / "idx").exists()


def test_not_an_index(tmp_path: Path) -> None:
    with pytest.raises(DensaError, match="not a densa index"):
        Index.open(tmp_path)


def test_truncation_is_counted_in_the_manifest(tmp_path: Path, hashing: HashingEncoder) -> None:
    docs = [Document("long", "word " * 40), Document("short", "two words")]
    index = Index.build(docs, tmp_path / "idx", encoder=hashing)
    assert index.manifest.channel_stat("dense", "truncated") == 1
    assert index.build_stats is not None and index.build_stats.truncated == 1


def test_vectors_stored_under_document_row_ids(tmp_path: Path, hashing: HashingEncoder) -> None:
    index = _build(tmp_path / "idx", hashing, batch_size=3)
    (part,) = index.channel("dense").parts  # type: ignore[attr-defined]
    assert len(part) == 10
    rid = index.snapshot.locate(["d4"])["d4"]  # one passage a document: passage id = row id
    stored = part.reconstruct(np.array([rid]))
    doc = index.get("d4")
    assert doc is not None
    np.testing.assert_allclose(stored, hashing.encode_documents([doc.full_text]), atol=1e-6)
