"""kill -9 the server during a burst of writes: every acknowledged write survives."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from densa.corpus import read_corpus
from densa.index import Index
from tests.helpers import TINY, HashingEncoder, search
from tests.serve.conftest import server


@pytest.mark.slow
def test_acknowledged_writes_survive_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    Index.build(read_corpus(TINY / "corpus.jsonl"), path, encoder=HashingEncoder())
    acknowledged: list[str] = []
    with server(path, hashing=True) as (proc, url):

        def burst() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                for i in range(1000):
                    doc = {
                        "id": f"w{i}",
                        "text": f"written document {i} about glaciers",
                        "metadata": {"i": i},
                    }
                    try:
                        response = client.post("/documents", json={"documents": [doc]})
                    except httpx.TransportError:
                        return  # the server died mid-request: this write was never acknowledged
                    assert response.status_code == 200, response.text
                    acknowledged.append(doc["id"])

        writer = threading.Thread(target=burst)
        writer.start()
        while len(acknowledged) < 8:
            time.sleep(0.01)
        proc.kill()  # SIGKILL, in the middle of the burst
        writer.join(timeout=60)
    assert len(acknowledged) >= 8
    index = Index.open(path, encoder=HashingEncoder())
    for doc_id in acknowledged:
        assert index.get(doc_id) is not None, doc_id
    # nothing half-applied: store, vectors and BM25 agree, and every stored write is searchable
    n = len(index)
    assert index.check()["channels"] == {"dense": n, "bm25": n}
    assert n - 10 in (len(acknowledged), len(acknowledged) + 1)  # at most the in-flight write landed
    found = {h.doc_id for h in search(index, ["glaciers"], k=n, mode="bm25")[0]}
    assert set(acknowledged) <= found
    with server(path, hashing=True) as (_, url):  # restart serves the same state
        assert httpx.get(f"{url}/healthz").json()["documents"] == n
