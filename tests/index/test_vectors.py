"""Every index kind against exact search on clustered synthetic vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densa.errors import ConfigError
from densa.index import Index, VectorIndex, VectorIndexConfig
from densa.types import Document
from tests.helpers import HashingEncoder

DIM, N = 64, 3000
KINDS = {  # kind -> (config, minimum recall@10 against exact search)
    "flat": (VectorIndexConfig(kind="flat"), 1.0),
    "hnsw": (VectorIndexConfig(kind="hnsw", hnsw_m=16), 0.95),
    "hnsw-sq8": (VectorIndexConfig(kind="hnsw-sq8", hnsw_m=16), 0.85),
    "ivf-flat": (VectorIndexConfig(kind="ivf-flat", nlist=16, nprobe=16), 1.0),
    "ivf-sq8": (VectorIndexConfig(kind="ivf-sq8", nlist=16, nprobe=8), 0.85),
    "ivf-pq": (VectorIndexConfig(kind="ivf-pq", nlist=16, nprobe=8, pq_m=8), 0.85),
    "binary": (VectorIndexConfig(kind="binary", rescore=20), 0.8),
}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[int]]:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(30, DIM))
    vectors = _unit(centers[rng.integers(30, size=N)] + 0.4 * rng.normal(size=(N, DIM)))
    queries = _unit(centers[rng.integers(30, size=50)] + 0.4 * rng.normal(size=(50, DIM)))
    ids = (1000 + 7 * rng.permutation(N)).tolist()  # unique, in no order: rows are looked up by id
    return vectors, queries, ids


def _exact(vectors: np.ndarray, ids: list[int], queries: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    return np.asarray(ids)[order]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recall_save_load_and_remove(
    kind: str, data: tuple[np.ndarray, np.ndarray, list[int]], tmp_path: Path
) -> None:
    vectors, queries, ids = data
    config, minimum = KINDS[kind]
    index = VectorIndex.create(DIM, config)
    index.add(vectors[:2000], ids[:2000])
    index.add(vectors[2000:], ids[2000:])  # added in two steps, like a build in batches
    assert len(index) == N
    scores, found = index.search(queries, 10)
    assert found.shape == (50, 10) and (np.diff(scores, axis=1) <= 1e-6).all()
    assert _recall(found, _exact(vectors, ids, queries, 10)) >= minimum
    index.save(tmp_path / "vectors.faiss")
    loaded = VectorIndex.load(tmp_path / "vectors.faiss", config)
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], found)
    np.testing.assert_allclose(loaded.reconstruct(ids[:3]), vectors[:3], atol=1e-6)
    np.testing.assert_allclose(loaded.reconstruct([ids[2999], ids[7]]), vectors[[2999, 7]], atol=1e-6)
    gone = ids[:500]
    loaded.remove(gone)
    assert len(loaded) == N - 500
    assert not set(loaded.search(queries, 10)[1].ravel().tolist()) & set(gone)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_filtered_search_is_exact_over_the_allowed_ids(
    kind: str, data: tuple[np.ndarray, np.ndarray, list[int]]
) -> None:
    vectors, queries, ids = data
    index = VectorIndex.create(DIM, KINDS[kind][0])
    index.add(vectors, ids)
    allowed = ids[::97]  # 31 scattered ids
    _, found = index.search(queries[:5], 5, allowed=allowed)
    positions = [ids.index(i) for i in allowed]
    truth = _exact(vectors[positions], allowed, queries[:5], 5)
    np.testing.assert_array_equal(found, truth)
    assert index.search(queries[:2], 5, allowed=[])[1].shape == (2, 0)


@pytest.mark.parametrize(
    ("kind", "param", "low", "high"),
    [("hnsw", "ef_search", 10, 200), ("ivf-flat", "nprobe", 1, 64), ("binary", "rescore", 1, 30)],
)
def test_search_params_trade_recall_without_a_rebuild(
    kind: str, param: str, low: int, high: int, data: tuple[np.ndarray, np.ndarray, list[int]]
) -> None:
    vectors, queries, ids = data
    truth = _exact(vectors, ids, queries, 10)
    index = VectorIndex.create(DIM, VectorIndexConfig(kind=kind, hnsw_m=4, nlist=64))  # type: ignore[arg-type]
    index.add(vectors, ids)
    index.set_search_params(**{param: low})
    assert getattr(index.config, param) == low
    coarse = _recall(index.search(queries, 10)[1], truth)
    index.set_search_params(**{param: high})
    fine = _recall(index.search(queries, 10)[1], truth)
    assert coarse < fine and fine > 0.95
    with pytest.raises(ConfigError):
        index.set_search_params(**{param: 0})


def test_binary_codes_use_a_thirty_second_of_float_memory(
    data: tuple[np.ndarray, np.ndarray, list[int]],
) -> None:
    vectors, _, ids = data
    binary, flat = (
        VectorIndex.create(DIM, VectorIndexConfig(kind="binary")),
        VectorIndex.create(DIM, VectorIndexConfig()),
    )
    binary.add(vectors, ids)
    flat.add(vectors, ids)
    assert binary.memory_bytes() * 32 == flat.memory_bytes() == N * DIM * 4


def test_index_kinds_work_through_the_index_folder(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", f"document {i} about topic {i % 7} and subject {i % 11}") for i in range(300)]
    config = VectorIndexConfig(kind="ivf-sq8", nlist=4)
    index = Index.build(docs, tmp_path / "idx", encoder=HashingEncoder(), vectors=config)
    assert index.manifest.vectors.kind == "ivf-sq8"
    assert index.manifest.bytes["vector_codes"] == 300 * 64  # one byte per dimension
    index = index.delete(["d1"]).add([Document("new", "document about topic 3")])
    reopened = Index.open(tmp_path / "idx", encoder=HashingEncoder())
    assert len(reopened) == 300 and len(reopened.vectors) == 300
    assert "d1" not in {h.doc_id for h in reopened.search(["topic 1 subject 1"], k=50)[0]}


def test_bad_configs() -> None:
    with pytest.raises(ConfigError):
        VectorIndexConfig(kind="lsh")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        VectorIndex.create(60, VectorIndexConfig(kind="ivf-pq", pq_m=7)).add(
            np.zeros((1, 60), np.float32), [1]
        )
