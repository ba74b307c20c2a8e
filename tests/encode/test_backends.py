"""Encoding backends against fp32 torch: ONNX (fp32, int8 weights) and bfloat16 autocast."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from densa.encode import (
    EncoderConfig,
    SentenceTransformerEncoder,
    backend_agreement,
    l2_normalize,
    make_encoder,
)
from densa.encode.onnx import PACK_TOKENS, OnnxEncoder, pack, pool
from densa.errors import ConfigError, DensaError
from densa.index import Index
from densa.types import Document
from tests.helpers import build_tiny_bert, search

TEXTS = ["Myocardial infarction damages the heart muscle.", "The stock market fell today.", "short"]


def test_numpy_pooling_matches_the_torch_module() -> None:
    import torch

    from densa.encode.pooling import pooling_module

    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    for how in ("cls", "mean", "max", "last-token"):
        module = pooling_module(how, 4)  # type: ignore[arg-type]
        features = {"token_embeddings": torch.tensor(tokens), "attention_mask": torch.tensor(mask)}
        expected = module(features)["sentence_embedding"].numpy()
        np.testing.assert_allclose(pool(tokens, mask, how), expected, atol=1e-6)  # type: ignore[arg-type]


@pytest.mark.slow
def test_onnx_export_matches_torch_and_is_cached(tmp_path: Path, minilm_path: Path) -> None:
    model = tmp_path / "minilm"
    shutil.copytree(
        minilm_path, model, ignore=shutil.ignore_patterns("onnx")
    )  # a writable copy: the export is cached beside it
    config = EncoderConfig(model=str(model), device="cpu")
    torch_vectors = SentenceTransformerEncoder(config).encode_documents(TEXTS)
    onnx = make_encoder(EncoderConfig(model=str(model), device="cpu", backend="onnx"))
    assert isinstance(onnx, OnnxEncoder) and onnx.path.parent == model / "onnx"
    import onnx as onnx_lib

    fused = {node.op_type for node in onnx_lib.load(str(onnx.path)).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= fused  # ONNX Runtime's optimizer ran
    np.testing.assert_allclose(onnx.encode_documents(TEXTS), torch_vectors, atol=1e-4)
    int8 = make_encoder(EncoderConfig(model=str(model), device="cpu", backend="onnx-int8"))
    cosines = (int8.encode_documents(TEXTS) * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.95
    assert backend_agreement(onnx, EncoderConfig(model=str(model), backend="onnx"), TEXTS) > 0.9999
    exported = {p.name: p.stat().st_mtime for p in (model / "onnx").glob("*.onnx")}
    make_encoder(EncoderConfig(model=str(model), backend="onnx-int8"))  # second time: from the cache
    assert {p.name: p.stat().st_mtime for p in (model / "onnx").glob("*.onnx")} == exported
    openvino = make_encoder(EncoderConfig(model=str(model), device="cpu", backend="openvino"))
    assert isinstance(openvino, OnnxEncoder) and openvino.path.suffix == ".xml"
    assert openvino.path.with_suffix(".bin").is_file()  # IR converted from the cached export
    assert (openvino.encode_documents(TEXTS) * torch_vectors).sum(axis=1).min() > 0.999  # bf16 at worst
    assert openvino.packed is not None and openvino.packed.name.endswith("-packed.xml")
    assert json.loads(openvino.packed.with_suffix(".json").read_text())["agrees"] is True
    many = [f"{text} {'and more words ' * (i % 7)}({i})" for i in range(40) for text in TEXTS]
    assert sum(len(t.split()) for t in many) > 2 * PACK_TOKENS  # packed into several rows
    torch_queries = SentenceTransformerEncoder(config).encode_queries(many)
    assert (openvino.encode_queries(many) * torch_queries).sum(axis=1).min() > 0.999
    index = Index.build([Document("a", TEXTS[0]), Document("b", TEXTS[1])], tmp_path / "idx", encoder=onnx)
    assert index.channels["dense"].settings["encoder"]["backend"] == "onnx"
    assert (
        search(Index.open(tmp_path / "idx"), ["heart attack"], 1)[0][0].doc_id == "a"
    )  # queries on onnx too
    on_openvino = Index.open(tmp_path / "idx", backend="openvino")  # queries on another backend
    queries, documents = on_openvino.query_encoder, on_openvino.encoder
    assert isinstance(queries, OnnxEncoder) and queries.runtime == "openvino"
    assert isinstance(documents, OnnxEncoder) and documents.runtime == "onnx"  # added documents: the index's
    assert search(on_openvino, ["heart attack"], 1)[0][0].doc_id == "a"


def test_pack_gives_a_longer_sequence_a_row_of_its_own_and_refuses_empty_ones() -> None:
    packed = pack([[1, 2], [3, 4, 5, 6, 7], [8]], capacity=3)
    assert packed.feeds["segments"].tolist() == [[0, 0, 2, -1, -1], [1, 1, 1, 1, 1]]
    assert packed.tokens.tolist() == [0, 1, 5, 6, 7, 8, 9, 2] and packed.lengths.tolist() == [2, 5, 1]
    with pytest.raises(DensaError, match="at least one token"):
        pack([[1], []])


@pytest.mark.slow
def test_a_model_whose_packed_output_differs_is_encoded_padded(tmp_path: Path, minilm_path: Path) -> None:
    """RoBERTa numbers positions from its padding id + 1, so packing's positions from 0 change
    its output: the check refuses the packed export and queries run on the padded graph."""
    model = build_tiny_bert(tmp_path / "tiny-roberta", minilm_path, roberta=True)
    options = EncoderConfig(model=str(model), device="cpu", pooling="mean", max_length=64)
    openvino = make_encoder(replace(options, backend="openvino"))
    assert isinstance(openvino, OnnxEncoder) and openvino.packed is None
    record = json.loads(next((model / "onnx").glob("*-packed.json")).read_text())
    assert record["agrees"] is False and record["max_abs_diff"] > 1e-3
    assert not list((model / "onnx").glob("*-packed.xml"))
    expected = SentenceTransformerEncoder(options).encode_queries(TEXTS)
    assert (openvino.encode_queries(TEXTS) * expected).sum(axis=1).min() > 0.999
    again = make_encoder(replace(options, backend="openvino"))  # the recorded check is reused
    assert isinstance(again, OnnxEncoder) and again.packed is None


@pytest.mark.slow
def test_a_failed_packed_export_leaves_queries_padded_and_is_tried_again(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import densa.encode.onnx as onnx_module

    model = tmp_path / "tiny"
    shutil.copytree(tiny_bert, model)

    def fail(*args: object) -> None:
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(onnx_module, "_export_packed", fail)
    options = EncoderConfig(model=str(model), device="cpu", pooling="mean", backend="openvino")
    padded = make_encoder(options)
    assert isinstance(padded, OnnxEncoder) and padded.packed is None
    assert not list((model / "onnx").glob("*-packed.*"))  # nothing recorded: the next export retries
    monkeypatch.undo()
    packed = make_encoder(options)
    assert isinstance(packed, OnnxEncoder) and packed.packed is not None
    cosines = (packed.encode_queries(TEXTS) * padded.encode_queries(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.999


def test_bf16_autocast_stays_close_to_fp32(minilm: SentenceTransformerEncoder) -> None:
    bf16 = make_encoder(EncoderConfig(device="cpu", backend="torch-bf16"))
    cosines = (l2_normalize(bf16.encode_documents(TEXTS)) * minilm.encode_documents(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.99
    with pytest.raises(ConfigError):
        EncoderConfig(backend="tensorrt")  # type: ignore[arg-type]


@pytest.mark.slow
def test_openvino_int8_is_calibrated_once_from_the_index_it_serves(tmp_path: Path, minilm_path: Path) -> None:
    model = tmp_path / "minilm"
    shutil.copytree(minilm_path, model, ignore=shutil.ignore_patterns("onnx"))
    int8 = EncoderConfig(model=str(model), device="cpu", backend="openvino-int8")
    with pytest.raises(DensaError, match="calibrated once"):
        make_encoder(int8)  # nothing cached and nothing to calibrate with
    docs = [Document("a", TEXTS[0]), Document("b", TEXTS[1]), Document("c", "Sharks rarely attack people.")]
    Index.build(docs, tmp_path / "idx", encoder=EncoderConfig(model=str(model), device="cpu"))
    index = Index.open(tmp_path / "idx", backend="openvino-int8")  # calibrates on the stored documents
    assert search(index, ["heart attack"], 1)[0][0].doc_id == "a"
    encoder = index.query_encoder
    assert isinstance(encoder, OnnxEncoder) and encoder.path.name.endswith("-ov-int8.xml")
    record = json.loads(encoder.path.with_suffix(".json").read_text())
    assert record["calibration_texts"] == len(docs)
    torch_vectors = SentenceTransformerEncoder(
        EncoderConfig(model=str(model), device="cpu")
    ).encode_documents(TEXTS)
    again = make_encoder(int8)  # from the cache now, no calibration needed
    cosines = (again.encode_documents(TEXTS) * torch_vectors).sum(axis=1)
    assert cosines[:2].min() > 0.98  # calibrated on these; "short" is outside the 3-text calibration
    assert json.loads(encoder.path.with_suffix(".json").read_text()) == record


def test_auto_picks_openvino_for_queries_on_an_fp32_torch_index(minilm: SentenceTransformerEncoder) -> None:
    from dataclasses import replace

    from densa.index.channels.dense import query_backend

    spec = minilm.spec
    assert spec.backend == "torch"
    assert query_backend(spec, "auto") == "openvino"  # openvino is installed in the test venv
    assert query_backend(spec, None) == "torch" and query_backend(spec, "onnx") == "onnx"
    assert query_backend(replace(spec, backend="onnx-int8"), "auto") == "onnx-int8"  # the index's own
    assert query_backend(replace(spec, query_model="q", query_fingerprint="x"), "auto") == "torch"


_NO_TORCH = """
import sys
from densa.index import Index
from tests.helpers import build_tiny_bert, search

index = Index.open(sys.argv[1], backend="openvino")
hits = search(index, ["heart attack"], 1)
assert "torch" not in sys.modules, "torch was imported"
print(hits[0][0].doc_id, type(index.query_encoder).__name__)
"""


@pytest.mark.slow
def test_a_cached_graph_encodes_queries_without_importing_torch(tmp_path: Path, minilm_path: Path) -> None:
    import subprocess
    import sys

    model = tmp_path / "minilm"
    shutil.copytree(minilm_path, model, ignore=shutil.ignore_patterns("onnx"))
    docs = [Document("a", TEXTS[0]), Document("b", TEXTS[1])]
    index = Index.build(docs, tmp_path / "idx", encoder=EncoderConfig(model=str(model)))
    graph = OnnxEncoder.from_cache(index.dense_kind().spec, model, "openvino")
    assert graph is None  # not exported yet
    exported = Index.open(tmp_path / "idx", backend="openvino")  # exports it, with torch
    assert isinstance(exported.query_encoder, OnnxEncoder)
    cached = OnnxEncoder.from_cache(index.dense_kind().spec, model, "openvino")
    assert cached is not None and cached.path == exported.query_encoder.path
    np.testing.assert_allclose(
        cached.encode_queries(TEXTS), exported.query_encoder.encode_queries(TEXTS), atol=1e-5
    )
    root = Path(__file__).parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, str(tmp_path / "idx")], capture_output=True, text=True, cwd=root
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["a", "OnnxEncoder"]


_ADD_WITHOUT_TORCH = """
import sys
from densa.index import Index
from densa.types import Document

index = Index.open(sys.argv[1]).add([Document("c", sys.argv[2])])
assert "torch" not in sys.modules, "torch was imported"
print(type(index.dense_kind().encoder).__name__, len(index))
"""


@pytest.mark.slow
@pytest.mark.parametrize("exported", ["onnx", "openvino"])  # the optimised graph, or the plain one
def test_adds_to_a_torch_index_use_a_cached_fp32_graph(
    tmp_path: Path, minilm_path: Path, exported: str
) -> None:
    """A one-document ``densa add`` loads no torch once a graph of the model is exported, and
    the vectors it adds are torch's up to float rounding."""
    import subprocess
    import sys

    model = tmp_path / "minilm"
    shutil.copytree(minilm_path, model, ignore=shutil.ignore_patterns("onnx"))
    torch_encoder = SentenceTransformerEncoder(EncoderConfig(model=str(model), device="cpu"))
    Index.build([Document("a", TEXTS[0]), Document("b", TEXTS[1])], tmp_path / "idx", encoder=torch_encoder)
    before = Index.open(tmp_path / "idx")  # nothing exported yet: documents on torch
    assert isinstance(before.dense_kind().encoder, SentenceTransformerEncoder)
    exporting = Index.open(tmp_path / "idx", backend=exported)  # type: ignore[arg-type]
    assert isinstance(exporting.query_encoder, OnnxEncoder)
    root = Path(__file__).parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _ADD_WITHOUT_TORCH, str(tmp_path / "idx"), TEXTS[2]],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["OnnxEncoder", "3"]
    added = Index.open(tmp_path / "idx", encoder=torch_encoder)  # torch's query vector of the text
    top = search(added, [TEXTS[2]], 1, mode="dense")[0][0]
    assert top.doc_id == "c" and top.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_a_parallel_graph_encodes_from_many_threads_as_one_caller_does(
    minilm_path: Path, backend: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    one = make_encoder(EncoderConfig(model=str(minilm_path), device="cpu", backend=backend))  # type: ignore[arg-type]
    assert isinstance(one, OnnxEncoder) and not one.thread_safe
    many = one.parallel(3)
    assert many.thread_safe and many.path == one.path
    texts = [f"{text} ({i})" for i in range(12) for text in TEXTS]
    expected = one.encode_queries(texts)
    with ThreadPoolExecutor(6) as threads:  # more threads than callers: some wait their turn
        parts = list(threads.map(lambda at: many.encode_queries(texts[at : at + 4]), range(0, len(texts), 4)))
        counts = list(
            threads.map(lambda at: many.count_truncated(texts[at : at + 4]), range(0, len(texts), 4))
        )
    cosines = (np.concatenate(parts) * expected).sum(axis=1)
    assert cosines.min() > 0.999  # other batch shapes, bf16 kernels: equal up to rounding
    assert counts == [0] * len(counts)
    assert many.tokenizer is not one.tokenizer  # each thread tokenizes with its own copy
    with pytest.raises(DensaError, match="callers must be at least 1"):
        one.parallel(0)
