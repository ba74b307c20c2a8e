from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from densa.corpus import read_corpus
from densa.errors import ConfigError
from densa.index import Index
from densa.serve import ServeConfig
from densa.serve.app import create_app
from densa.types import Document
from tests.helpers import TINY, HashingEncoder


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "idx", encoder=HashingEncoder())
    return tmp_path / "idx"


def client(index_path: Path, **options: object) -> TestClient:
    return TestClient(create_app(ServeConfig(index=index_path, **options), encoder=HashingEncoder()))  # type: ignore[arg-type]


def test_search_one_and_many_queries_in_each_mode(index_path: Path) -> None:
    api = client(index_path)
    body = api.post("/search", json={"query": "shark attack surfer", "k": 3}).json()
    assert body["mode"] == "dense"
    (result,) = body["results"]
    assert result["query"] == "shark attack surfer"
    assert result["hits"][0]["id"] == "d5"
    assert set(result["hits"][0]) == {"rank", "id", "score", "title", "snippet", "metadata"}
    many = api.post("/search", json={"queries": ["lava", "bread"], "k": 2, "mode": "bm25"}).json()
    assert [r["hits"][0]["id"] for r in many["results"]] == ["d7", "d6"]
    hybrid = api.post(
        "/search", json={"query": "heart", "mode": "hybrid", "filter": {"topic": "medical"}}
    ).json()
    assert {h["id"] for h in hybrid["results"][0]["hits"]} <= {"d3", "d4"}


@pytest.mark.parametrize(
    "payload",
    [
        {"query": "x", "k": 0},
        {"query": "x", "k": 1001},
        {"query": "x", "mode": "sparse"},
        {"query": "x", "queries": ["y"]},
        {},
        {"query": "x", "unknown": 1},
    ],
)
def test_invalid_search_requests_get_json_422(index_path: Path, payload: dict[str, object]) -> None:
    response = client(index_path).post("/search", json=payload)
    assert response.status_code == 422
    assert "detail" in response.json()


def test_limits_on_query_length_count_and_body_size(index_path: Path) -> None:
    api = client(index_path, max_query_chars=20, max_queries=2, max_body_bytes=2048)
    assert api.post("/search", json={"query": "x" * 21}).status_code == 422
    assert api.post("/search", json={"queries": ["a", "b", "c"]}).status_code == 422
    big = api.post("/documents", json={"documents": [{"id": "big", "text": "y" * 5000}]})
    assert big.status_code == 413 and "bytes" in big.json()["detail"]
    assert api.post("/search", json={"query": "lava", "rerank": True}).status_code == 400  # no reranker


def test_documents_add_get_delete_persist(index_path: Path) -> None:
    api = client(index_path)
    docs = [
        {
            "id": "n1",
            "text": "Volcanic lava cools into basalt.",
            "title": "Basalt",
            "metadata": {"topic": "geo"},
        }
    ]
    assert api.post("/documents", json={"documents": docs}).json() == {"added": 1, "documents": 11}
    assert api.get("/documents/n1").json()["title"] == "Basalt"
    assert api.post("/documents", json={"documents": docs}).status_code == 409
    assert (
        api.post("/search", json={"query": "basalt", "mode": "bm25"}).json()["results"][0]["hits"][0]["id"]
        == "n1"
    )
    assert api.delete("/documents/d1").json() == {"deleted": "d1", "documents": 10}
    assert api.get("/documents/d1").status_code == 404
    assert api.delete("/documents/d1").status_code == 404
    on_disk = Index.open(index_path, encoder=HashingEncoder())
    assert on_disk.get("n1") is not None and on_disk.get("d1") is None and len(on_disk) == 10


def test_health_stats_and_openapi(index_path: Path) -> None:
    api = client(index_path)
    assert api.get("/healthz").json() == {"status": "ok", "documents": 10}
    api.post("/search", json={"query": "moon"})
    stats = api.get("/stats").json()
    assert stats["documents"] == 10 and stats["searches"] == 1
    assert stats["channels"] == {"dense": "dense", "bm25": "bm25"} and stats["segments"] == 1
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/search",
        "/context",
        "/documents",
        "/documents/{doc_id}",
        "/healthz",
        "/stats",
        "/channels",
    } <= set(paths)


def test_write_policy(index_path: Path) -> None:
    doc = {"documents": [{"id": "w", "text": "words"}]}
    assert client(index_path, read_only=True).post("/documents", json=doc).status_code == 403
    assert client(index_path, host="0.0.0.0").post("/documents", json=doc).status_code == 403
    keyed = client(index_path, host="0.0.0.0", api_key="s3cret")
    assert keyed.post("/documents", json=doc).status_code == 401
    assert keyed.post("/documents", json=doc, headers={"X-API-Key": "wrong"}).status_code == 401
    assert keyed.post("/documents", json=doc, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert keyed.delete("/documents/w", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert keyed.post("/search", json={"query": "words"}).status_code == 200  # reads need no key


def test_context_endpoint_cites_within_the_budget(index_path: Path) -> None:
    api = client(index_path)
    body = api.post("/context", json={"query": "lava and ash", "k": 3, "max_tokens": 40}).json()
    assert body["tokens"] <= 40
    assert body["citations"][0]["doc_id"] == "d7" and body["citations"][0]["number"] == 1
    assert body["context"].startswith("[1] Volcanoes (d7)")
    assert body["context"] in body["prompt"] and "Question: lava and ash" in body["prompt"]


def test_page_and_assets_are_served_without_a_cdn(index_path: Path) -> None:
    api = client(index_path)
    page = api.get("/")
    assert page.status_code == 200 and 'id="columns"' in page.text  # filled with one column per channel
    assert api.get("/channels").json() == [
        {"name": "dense", "kind": "dense", "unit": "passage"},
        {"name": "bm25", "kind": "bm25", "unit": "document"},
    ]
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        response = api.get(asset)
        assert response.status_code == 200 and "https://" not in response.text


def test_writes_from_another_process_are_seen_and_do_not_block_own_writes(index_path: Path) -> None:
    api = client(index_path)
    assert api.get("/documents/d1").status_code == 200
    cli = Index.open(index_path, encoder=HashingEncoder())  # as `densa add` / `densa delete` would
    cli.add([Document("from-cli", "Glaciers carve valleys.")]).delete(["d1"])
    assert api.get("/documents/from-cli").status_code == 200  # the next request sees the new generation
    assert api.get("/documents/d1").status_code == 404
    hits = api.post("/search", json={"query": "glaciers valleys", "mode": "bm25"}).json()["results"][0][
        "hits"
    ]
    assert hits[0]["id"] == "from-cli"
    added = api.post("/documents", json={"documents": [{"id": "from-api", "text": "Ice sheets melt."}]})
    assert added.status_code == 200 and added.json()["documents"] == 11  # no "changed by another writer"
    assert len(Index.open(index_path, encoder=HashingEncoder())) == 11


def test_search_options_come_from_the_search_config(index_path: Path) -> None:
    api = client(index_path)
    body = {
        "query": "heart attack",
        "mode": "dense+bm25",
        "fusion": {"method": "rrf", "weights": {"dense": 2, "bm25": 1}},
    }
    response = api.post("/search", json=body).json()
    assert response["channels"] == ["dense", "bm25"] and response["mode"] == "dense+bm25"
    properties = api.get("/openapi.json").json()["components"]["schemas"]["SearchRequest"]["properties"]
    assert {"mode", "fusion", "depth", "aggregate", "top_passages", "rerank_depth", "rerank_weight"} <= set(
        properties
    )
    assert api.post("/search", json={"query": "x", "depth": 0}).status_code == 422  # SearchConfig's own check
    weights = {"query": "x", "mode": "hybrid", "fusion": {"weights": {"dense": 1}}}
    assert api.post("/search", json=weights).status_code == 422  # no weight for bm25


def test_a_pipeline_sets_the_defaults_of_requests_and_requests_override_them(
    index_path: Path, tmp_path: Path, minilm_path: Path
) -> None:
    from densa.search import SearchConfig
    from densa.search.pipeline import Pipeline
    from densa.serve import with_pipeline
    from tests.helpers import build_tiny_bert

    reranker = build_tiny_bert(tmp_path / "ce", minilm_path, classifier=True)
    search = SearchConfig(mode="bm25", depth=5, rerank_depth=4, rerank_weight=0.5)
    pipeline = Pipeline(search, reranker=reranker)
    config = with_pipeline(ServeConfig(index=index_path), pipeline)
    assert (config.reranker, config.rerank_weight, config.rerank_by_default) == (reranker, 0.5, True)
    by_hand = with_pipeline(ServeConfig(index=index_path, rerank_weight=0.2), pipeline, {"rerank_weight"})
    assert by_hand.rerank_weight == 0.2
    api = TestClient(create_app(config, encoder=HashingEncoder()))
    plain = client(index_path, reranker=reranker)

    def ids(api: TestClient, **body: object) -> list[str]:
        answer = api.post("/search", json={"query": "heart attack", "k": 5, **body})
        assert answer.status_code == 200, answer.text
        return [h["id"] for h in answer.json()["results"][0]["hits"]]

    piped = {"mode": "bm25", "depth": 5, "rerank_depth": 4, "rerank_weight": 0.5, "rerank": True}
    assert api.post("/search", json={"query": "heart"}).json()["mode"] == "bm25"
    assert ids(api) == ids(plain, **piped)  # the file's mode, depths and reranker
    assert ids(api, rerank=False) == ids(plain, mode="bm25", depth=5)
    assert ids(api, mode="dense") == ids(plain, **{**piped, "mode": "dense"})  # a request's option wins
    with pytest.raises(Exception, match="nope"):  # a pipeline naming a channel the index lacks
        create_app(replace(config, search=SearchConfig(mode="nope")), encoder=HashingEncoder())
    with pytest.raises(ConfigError, match="needs a reranker"):
        ServeConfig(index=index_path, rerank_by_default=True)


def test_a_snippet_is_the_start_of_the_text_with_whitespace_runs_made_one_space() -> None:
    from densa.serve.app import _snippet
    from densa.types import Hit

    def snippet(text: str) -> str:
        return _snippet(Hit("d", 1.0, 1, "", text, {}, None))

    words = " ".join(f"word{i}" for i in range(400))
    assert snippet(words) == words[:319] + "…"
    spaced = words.replace(" ", " \n\t ")  # runs of whitespace: the same words, the same snippet
    assert snippet(spaced) == words[:319] + "…"
    mostly_blank = " " * 5000 + "late words"  # the start is blank: the words further on
    assert snippet(mostly_blank) == "late words"
    assert snippet("short  text\n") == "short text"


def test_a_running_server_keeps_start_up_objects_out_of_the_collector(index_path: Path) -> None:
    import gc

    gc.unfreeze()
    app = create_app(ServeConfig(index=index_path), encoder=HashingEncoder())
    with TestClient(app) as api:
        assert gc.get_freeze_count() > 0  # modules, the index: never walked by a full collection
        assert api.post("/search", json={"query": "heart"}).status_code == 200
    assert gc.get_freeze_count() == 0  # handed back when the server stops
