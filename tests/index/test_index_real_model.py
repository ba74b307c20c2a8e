"""The core promise with the real bundled model: a meaning match keyword search misses."""

from __future__ import annotations

from pathlib import Path

from densa.corpus import read_corpus
from densa.demo import sample_dataset_path, shared_words
from densa.encode import SentenceTransformerEncoder
from densa.index import Index
from tests.helpers import TINY, search


def test_heart_attack_finds_myocardial_infarction(tmp_path: Path, minilm: SentenceTransformerEncoder) -> None:
    index = Index.build(read_corpus(sample_dataset_path() / "corpus.jsonl"), tmp_path / "idx", encoder=minilm)
    top = search(index, ["heart attack"], k=3)[0][0]
    assert top.doc_id == "med-mi"
    assert shared_words("heart attack", f"{top.title} {top.text}") == set()
    reopened = Index.open(tmp_path / "idx")  # loads the encoder from the manifest
    assert search(reopened, ["heart attack"], k=1)[0][0].doc_id == "med-mi"


def test_channels_of_one_model_load_it_once(tmp_path: Path, minilm: SentenceTransformerEncoder) -> None:
    from densa.index import VectorIndexConfig

    index = Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=minilm)
    index.copy_channel("dense", "dense-hnsw", VectorIndexConfig(kind="hnsw")).close()
    reopened = Index.open(tmp_path / "idx")  # loads the model from the manifest
    assert reopened.dense_kind("dense-hnsw").query_encoder is reopened.dense_kind("dense").query_encoder
    assert reopened.dense_kind("dense-hnsw").encoder is reopened.dense_kind("dense").encoder
    hits = search(reopened, "heart attack", mode="dense-hnsw")[0]
    assert hits[0].doc_id == search(reopened, "heart attack", mode="dense")[0][0].doc_id
