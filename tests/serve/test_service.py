"""The service behind the HTTP API and its configuration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from densa.corpus import read_corpus
from densa.encode import EncoderConfig
from densa.errors import ConfigError
from densa.index import Index
from densa.search import SearchConfig
from densa.serve import ServeConfig
from densa.serve.service import IndexService
from tests.helpers import TINY


@pytest.mark.slow
def test_openvino_int8_queries_are_calibrated_on_the_served_index(tmp_path: Path, minilm_path: Path) -> None:
    model = tmp_path / "minilm"
    shutil.copytree(minilm_path, model, ignore=shutil.ignore_patterns("onnx"))  # not calibrated yet
    Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=EncoderConfig(model=str(model)))
    service = IndexService(ServeConfig(index=tmp_path / "idx", backend="openvino-int8"))
    (record,) = (model / "onnx").glob("*-ov-int8.json")
    assert json.loads(record.read_text())["calibration_texts"] == 10  # the index's 10 documents
    with service.snapshot() as index:
        assert index.query_encoder.spec.backend == "openvino-int8"
    assert service.search(["heart attack"], 1, SearchConfig(), None, rerank=False)[1][0][0].doc_id == "d3"


def test_serve_config_refuses_a_rerank_weight_outside_zero_to_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rerank_weight must be in \[0, 1\]"):
        ServeConfig(index=tmp_path, rerank_weight=1.5)
    assert ServeConfig(index=tmp_path, rerank_weight=0.0).rerank_weight == 0.0


def test_swapped_out_snapshots_are_closed_so_old_generations_go(tmp_path: Path) -> None:
    from densa.types import Document
    from tests.helpers import HashingEncoder

    Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())
    service = IndexService(ServeConfig(index=tmp_path / "idx"), encoder=HashingEncoder())
    for i in range(3):
        service.add([Document(f"n{i}", f"new document {i}")])
    with service.snapshot() as index:  # a request in flight keeps its snapshot open ...
        service.delete(["n0"])
        assert index.get("n0") is not None and len(index) == 13
    commits = sorted(p.name for p in (tmp_path / "idx" / "commits").iterdir())
    assert len(commits) <= 2, commits  # ... but nothing older than the one before the last is held
    assert service._retired == []


def test_the_service_measures_label_free_fusion_when_it_opens(tmp_path: Path) -> None:
    from densa.index import BM25Config, DenseChannel, VectorIndexConfig
    from densa.search.calibrate import CALIBRATION_FILE
    from tests.helpers import HashingEncoder
    from tests.search.test_calibrate import _corpus

    channels = {"dense": DenseChannel(HashingEncoder(), VectorIndexConfig()), "bm25": BM25Config()}
    Index.build(_corpus(), tmp_path / "idx", channels=channels).close()
    assert not (tmp_path / "idx" / CALIBRATION_FILE).exists()
    service = IndexService(ServeConfig(index=tmp_path / "idx"), encoder=HashingEncoder())
    try:
        assert (tmp_path / "idx" / CALIBRATION_FILE).is_file()  # before the first request
        _, hits = service.search(["shark ocean reef"], 3, SearchConfig(mode="hybrid"), None, rerank=False)
        assert len(hits[0]) == 3
    finally:
        service.close()


def test_a_request_asks_the_channels_kinds_for_no_model(tmp_path: Path) -> None:
    """Choosing a request's lane reads the kinds' classes only: reading ``tokenizer`` would load
    the model (or copy a tokenizer for the server's thread) on every request."""
    from tests.helpers import HashingEncoder

    Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())
    service = IndexService(ServeConfig(index=tmp_path / "idx"), encoder=HashingEncoder())
    try:
        with service.snapshot() as index:
            kind = index.dense_kind()

            class Untouchable(type(kind)):  # type: ignore[misc]
                @property
                def tokenizer(self) -> object:
                    raise AssertionError("the model was asked for")

            kind.__class__ = Untouchable
        _, hits = service.search(["heart attack"], 2, SearchConfig(), None, rerank=False)
        assert len(hits[0]) == 2
        assert service.stats()["batches"]["model"]["queries"] == 1  # on the model's lane all the same
    finally:
        service.close()


def test_the_service_runs_each_vector_search_on_the_configured_threads(tmp_path: Path) -> None:
    import faiss

    from tests.helpers import HashingEncoder

    Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(2)
        service = IndexService(ServeConfig(index=tmp_path / "idx"), encoder=HashingEncoder())
        service.close()
        assert faiss.omp_get_max_threads() == 1  # the default: concurrency comes from requests
        config = ServeConfig(index=tmp_path / "idx", search_threads=2)
        service = IndexService(config, encoder=HashingEncoder())
        service.close()
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
    with pytest.raises(ConfigError, match="search_threads"):
        ServeConfig(index=tmp_path, search_threads=0)


def test_every_model_worker_searches_all_channels_once_before_the_first_request(tmp_path: Path) -> None:
    import threading
    from typing import ClassVar

    from densa.index import BM25Config, DenseChannel, VectorIndexConfig
    from tests.helpers import HashingEncoder
    from tests.search.test_calibrate import _corpus

    class Counting(HashingEncoder):
        threads: ClassVar[list[str]] = []

        def encode_queries(self, texts):  # type: ignore[no-untyped-def]
            self.threads.append(threading.current_thread().name)
            return super().encode_queries(texts)

    channels = {"dense": DenseChannel(HashingEncoder(), VectorIndexConfig()), "bm25": BM25Config()}
    Index.build(_corpus(), tmp_path / "idx", channels=channels).close()
    service = IndexService(ServeConfig(index=tmp_path / "idx", model_threads=2), encoder=Counting())
    try:
        workers = sorted(t for t in Counting.threads if t.startswith("densa-batcher"))
        assert workers == ["densa-batcher-model-0", "densa-batcher-model-1"]  # (calibration: main)
        _, hits = service.search(["shark ocean reef"], 3, SearchConfig(mode="hybrid"), None, rerank=False)
        assert len(hits[0]) == 3
    finally:
        service.close()
