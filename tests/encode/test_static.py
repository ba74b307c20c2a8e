from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from densa.encode import EncoderConfig, make_encoder
from densa.encode.static import StaticEncoder, distill, is_static_model
from densa.errors import ConfigError, DensaError
from densa.index import BM25Config, DenseChannel, Index, VectorIndexConfig
from densa.search import SearchConfig, Searcher
from densa.types import Document


@pytest.fixture(scope="module")
def static_model(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    return distill(tmp_path_factory.mktemp("static") / "model", str(tiny_bert), pca_dims=16)


def test_distill_writes_a_model2vec_folder(static_model: Path) -> None:
    from safetensors.numpy import load_file

    assert is_static_model(static_model)
    table = load_file(str(static_model / "model.safetensors"))["embeddings"]
    vocab = json.loads((static_model / "tokenizer.json").read_text())["model"]["vocab"]
    assert table.shape == (len(vocab), 16)
    assert not table[vocab["[unused0]"]].any() and table[vocab["heart"]].any()
    config = json.loads((static_model / "config.json").read_text())
    assert config["model_type"] == "model2vec" and config["hidden_dim"] == 16


def test_a_text_is_the_normalised_mean_of_its_token_vectors(static_model: Path) -> None:
    from safetensors.numpy import load_file

    table = load_file(str(static_model / "model.safetensors"))["embeddings"]
    vocab = json.loads((static_model / "tokenizer.json").read_text())["model"]["vocab"]
    encoder = make_encoder(EncoderConfig(model=str(static_model)))
    assert isinstance(encoder, StaticEncoder) and encoder.spec.backend == "static"
    # "Heart heart attack": lower-cased, three tokens, no [CLS]/[SEP]
    expected = (2 * table[vocab["heart"]] + table[vocab["attack"]]) / 3
    expected /= np.linalg.norm(expected)
    got = encoder.encode_queries(["Heart heart attack"])[0]
    assert got == pytest.approx(expected, abs=1e-6)
    assert encoder.encode_documents(["Heart heart attack"])[0] == pytest.approx(got)
    empty = encoder.encode_documents(["", "heart"])
    assert not empty[0].any() and empty.shape == (2, 16)


def test_it_encodes_as_model2vec_does(static_model: Path) -> None:
    model2vec = pytest.importorskip("model2vec")
    theirs = model2vec.StaticModel.from_pretrained(str(static_model)).encode(["cardiac arrest in athletes"])
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    ours = make_encoder(EncoderConfig(model=str(static_model))).encode_queries(["cardiac arrest in athletes"])
    assert ours == pytest.approx(theirs, abs=1e-5)


def test_a_static_model_has_no_other_backend(static_model: Path, tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="static model"):
        make_encoder(EncoderConfig(model=str(static_model), backend="onnx"))
    with pytest.raises(ConfigError, match="needs a static model folder"):
        make_encoder(EncoderConfig(model=str(tiny_bert), backend="static"))
    with pytest.raises(DensaError, match="already exists"):
        distill(static_model, str(tiny_bert))


def test_a_static_channel_indexes_updates_and_reopens(static_model: Path, tmp_path: Path) -> None:
    docs = [
        Document("d1", "heart attack and cardiac arrest"),
        Document("d2", "sharks swim in the ocean"),
        Document("d3", "bread needs yeast and flour"),
    ]
    channels = {
        "static": DenseChannel(EncoderConfig(model=str(static_model)), VectorIndexConfig()),
        "bm25": BM25Config(),
    }
    index = Index.build(docs, tmp_path / "idx", channels=channels)
    index = index.add([Document("d4", "heart surgery")]).delete(["d2"])
    reopened = Index.open(tmp_path / "idx")
    assert reopened.channels["static"].settings["encoder"]["backend"] == "static"
    hits = Searcher(reopened, SearchConfig(mode="static")).hits(["heart attack"], 3)[0]
    assert hits[0].doc_id == "d1" and "d2" not in [h.doc_id for h in hits]
    fresh = Index.build(
        [docs[0], docs[2], Document("d4", "heart surgery")], tmp_path / "fresh", channels=channels
    )
    again = Searcher(fresh, SearchConfig(mode="static")).hits(["heart attack"], 3)[0]
    assert [(h.doc_id, round(h.score, 5)) for h in again] == [(h.doc_id, round(h.score, 5)) for h in hits]
