"""Bad HTTP requests get the documented status and error body, never a 500 or a server path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from densa.corpus import read_corpus
from densa.index import Index
from densa.serve import ServeConfig
from densa.serve.app import create_app
from tests.helpers import TINY, HashingEncoder


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())
    return tmp_path / "idx"


def _client(index_path: Path, **options: Any) -> TestClient:
    return TestClient(create_app(ServeConfig(index=index_path, **options), encoder=HashingEncoder()))


def _error(response: Any, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"detail", "error", "errors"} and body["error"] == error, body
    assert "/tmp/" not in response.text and "segments/" not in response.text, body  # no server paths
    return str(body["detail"])


BAD_SEARCHES = [
    ({"query": "x", "k": True}, "validation"),
    ({"query": "x", "k": "3"}, "validation"),
    ({"query": "x", "k": 0}, "validation"),
    ({"query": "   "}, "validation"),
    ({"queries": ["ok", " \t"]}, "validation"),
    ({"query": "x", "queries": ["y"]}, "validation"),
    ({}, "validation"),
    ({"query": "x", "mode": 3}, "validation"),
    ({"query": "x", "rerank": "yes"}, "validation"),
    ({"query": "x", "depth": 0}, "invalid_option"),
    ({"query": "x", "mode": "sparse"}, "invalid_option"),
    ({"query": "x", "mode": "dense bm25"}, "invalid_option"),
    ({"query": "x", "filter": {"to\x00pic": "a"}}, "validation"),
    ({"query": "x", "filter": {"topic": {"nested": 1}}}, "validation"),
    ({"query": "x", "unknown": 1}, "validation"),
]


@pytest.mark.parametrize(("body", "error"), BAD_SEARCHES)
def test_bad_searches_are_422_with_the_error_body(index_path: Path, body: dict[str, Any], error: str) -> None:
    _error(_client(index_path).post("/search", json=body), 422, error)


def test_bad_documents_and_bodies(index_path: Path) -> None:
    api = _client(index_path, max_body_bytes=4096)
    blank = {"documents": [{"id": "w", "text": "  \n "}]}
    assert "white space" in _error(api.post("/documents", json=blank), 422, "validation")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    nested = {"documents": [{"id": "n", "text": "ok", "metadata": deep}]}
    assert "deeper than 32" in _error(api.post("/documents", json=nested), 422, "validation")
    not_utf8 = b'{"query": "caf\xe9"}'
    headers = {"content-type": "application/json"}
    assert "not UTF-8" in _error(api.post("/search", content=not_utf8, headers=headers), 422, "invalid_input")
    garbage = api.post("/search", content=b"{not json", headers=headers)
    _error(garbage, 422, "validation")


def test_the_body_limit_counts_bytes_actually_read_chunked_or_not(index_path: Path) -> None:
    api = _client(index_path, max_body_bytes=4096)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"documents": [{"id": "big", "text": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}]}'

    assert "over 4096 bytes" in _error(api.post("/documents", content=chunks()), 413, "too_large")
    declared = api.post("/documents", json={"documents": [{"id": "big", "text": "y" * 5000}]})
    _error(declared, 413, "too_large")
    assert api.get("/documents/big").status_code == 404  # nothing was added


def test_conflicts_not_found_and_concurrent_adds_of_one_id(index_path: Path) -> None:
    api = _client(index_path)
    _error(api.get("/documents/nope"), 404, "not_found")
    _error(api.delete("/documents/nope"), 404, "not_found")
    _error(api.post("/documents", json={"documents": [{"id": "d1", "text": "again"}]}), 409, "conflict")
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def add() -> None:
        barrier.wait()
        response = api.post(
            "/documents", json={"documents": [{"id": "same", "text": "one id, four writers"}]}
        )
        statuses.append(response.status_code)
        if response.status_code != 200:
            _error(response, 409, "conflict")

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409, 409, 409]


def test_api_keys_need_the_bearer_scheme(index_path: Path) -> None:
    api = _client(index_path, api_key="s3cret")
    doc = {"documents": [{"id": "k", "text": "words"}]}
    _error(api.post("/documents", json=doc, headers={"Authorization": "s3cret"}), 401, "unauthorized")
    _error(api.post("/documents", json=doc, headers={"Authorization": "Basic s3cret"}), 401, "unauthorized")
    assert api.post("/documents", json=doc, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_damaged_index_is_a_500_with_a_safe_message(index_path: Path) -> None:
    from densa.types import Document

    api = _client(index_path)
    assert api.post("/search", json={"query": "heart"}).status_code == 200
    before = set((index_path / "segments").iterdir())
    Index.open(index_path, encoder=HashingEncoder()).add([Document("new", "heart rate")]).close()
    (segment,) = set((index_path / "segments").iterdir()) - before  # another writer's segment
    (segment / "dense" / "vectors.faiss").write_bytes(b"garbage")  # before the server opens it
    detail = _error(api.post("/search", json={"query": "heart"}), 500, "index_damaged")
    assert "server log" in detail


def test_openapi_documents_every_error_status_with_one_body(index_path: Path) -> None:
    schema = _client(index_path).get("/openapi.json").json()
    for path, method in (("/search", "post"), ("/documents", "post"), ("/documents/{doc_id}", "delete")):
        responses = schema["paths"][path][method]["responses"]
        assert {"400", "404", "409", "413", "422", "500"} <= set(responses), (path, sorted(responses))
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    request = schema["components"]["schemas"]["SearchRequest"]
    assert request["oneOf"] == [{"required": ["query"]}, {"required": ["queries"]}]


def test_docs_are_served_without_a_cdn(index_path: Path) -> None:
    api = _client(index_path)
    page = api.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert api.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
