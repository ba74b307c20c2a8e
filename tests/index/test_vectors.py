"""Every index kind against exact search on clustered synthetic vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densa.errors import ConfigError
from densa.index import Index, VectorIndex, VectorIndexConfig
from densa.types import Document
from tests.helpers import HashingEncoder, search

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
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(30, DIM))
    vectors = _unit(centers[rng.integers(30, size=N)] + 0.4 * rng.normal(size=(N, DIM)))
    queries = _unit(centers[rng.integers(30, size=50)] + 0.4 * rng.normal(size=(50, DIM)))
    return vectors, queries


def _exact(vectors: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    rows = np.arange(len(vectors)) if rows is None else rows
    order = np.argsort(-(queries @ vectors[rows].T), axis=1)[:, :k]
    return rows[order]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recall_and_save_load(kind: str, data: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    vectors, queries = data
    config, minimum = KINDS[kind]
    index = VectorIndex.build(vectors, config)
    assert len(index) == N
    scores, found = index.search(queries, 10)
    assert found.shape == (50, 10) and (np.diff(scores, axis=1) <= 1e-6).all()
    assert _recall(found, _exact(vectors, queries, 10)) >= minimum
    index.save(tmp_path / "part")
    loaded = VectorIndex.load(tmp_path / "part")
    assert loaded.config == config
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], found)
    np.testing.assert_allclose(loaded.reconstruct(np.array([0, 1, 2])), vectors[:3], atol=1e-6)
    np.testing.assert_allclose(loaded.reconstruct(np.array([2999, 7])), vectors[[2999, 7]], atol=1e-6)
    np.testing.assert_allclose(loaded.all_vectors(), vectors, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_masked_search_returns_only_allowed_rows(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = data
    config, minimum = KINDS[kind]
    index = VectorIndex.build(vectors, config)
    selective = np.zeros(N, bool)
    selective[::97] = True  # 31 scattered rows: scored exactly
    _, found = index.search(queries[:5], 5, allowed=selective)
    np.testing.assert_array_equal(found, _exact(vectors, queries[:5], 5, np.flatnonzero(selective)))
    assert index.search(queries[:2], 5, allowed=np.zeros(N, bool))[1].shape == (2, 0)
    broad = np.ones(N, bool)
    broad[::10] = False  # a tenth deleted: the kind's own search, never returning a deleted row
    _, found = index.search(queries, 10, allowed=broad)
    assert broad[found[found >= 0]].all()
    assert _recall(found, _exact(vectors, queries, 10, np.flatnonzero(broad))) >= minimum


@pytest.mark.parametrize(
    ("kind", "param", "low", "high"),
    [("hnsw", "ef_search", 10, 200), ("ivf-flat", "nprobe", 1, 64), ("binary", "rescore", 1, 30)],
)
def test_search_params_trade_recall_without_a_rebuild(
    kind: str, param: str, low: int, high: int, data: tuple[np.ndarray, np.ndarray]
) -> None:
    vectors, queries = data
    truth = _exact(vectors, queries, 10)
    index = VectorIndex.build(vectors, VectorIndexConfig(kind=kind, hnsw_m=4, nlist=64))  # type: ignore[arg-type]
    index.set_search_params(**{param: low})
    assert getattr(index.config, param) == low
    coarse = _recall(index.search(queries, 10)[1], truth)
    index.set_search_params(**{param: high})
    fine = _recall(index.search(queries, 10)[1], truth)
    assert coarse < fine and fine > 0.95
    with pytest.raises(ConfigError):
        index.set_search_params(**{param: 0})


def test_binary_codes_use_a_thirty_second_of_float_memory(data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, _ = data
    binary = VectorIndex.build(vectors, VectorIndexConfig(kind="binary"))
    flat = VectorIndex.build(vectors, VectorIndexConfig())
    assert binary.memory_bytes() * 32 == flat.memory_bytes() == N * DIM * 4


def test_index_kinds_work_through_the_index_folder(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", f"document {i} about topic {i % 7} and subject {i % 11}") for i in range(300)]
    config = VectorIndexConfig(kind="ivf-sq8", nlist=4)
    index = Index.build(docs, tmp_path / "idx", encoder=HashingEncoder(), vectors=config)
    assert index.channels["dense"].settings["vectors"]["kind"] == "ivf-sq8"
    (segment,) = index.manifest.segments
    assert segment.parts["dense"]["kind"] == "ivf-sq8"
    assert segment.parts["dense"]["vector_codes"] == 300 * 64  # one byte per dimension
    index = index.delete(["d1"]).add([Document("new", "document about topic 3")])
    assert [s.parts["dense"]["kind"] for s in index.manifest.segments] == ["ivf-sq8", "flat"]  # a small delta
    reopened = Index.open(tmp_path / "idx", encoder=HashingEncoder())
    assert len(reopened) == 300 and reopened.manifest.passages == 300
    assert "d1" not in {h.doc_id for h in search(reopened, ["topic 1 subject 1"], k=50)[0]}
    optimized = reopened.optimize()
    (merged,) = optimized.manifest.segments
    assert merged.parts["dense"]["kind"] == "ivf-sq8" and merged.rows == 300  # the configured kind again


@pytest.mark.parametrize("n_queries", [1, 7, 50])
def test_flat_search_by_blas_products_finds_what_faiss_finds(
    n_queries: int, data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    import densa.index.vectors as vectors_module

    vectors, queries = data
    queries = queries[:n_queries]
    reference = faiss.IndexFlatIP(DIM)
    reference.add(vectors)
    index = VectorIndex.build(vectors, VectorIndexConfig(kind="flat"))
    monkeypatch.setattr(vectors_module, "_SCORE_BLOCK", 3 * N)  # blocks of 3 queries
    monkeypatch.setattr(vectors_module, "_BLAS_MIN_QUERIES", 1)  # the product for every batch
    for k in (1, 10, N, N + 5):
        want_scores, want_rows = reference.search(queries, min(k, N))
        scores, rows = index.search(queries, k)
        assert rows.shape == want_rows.shape and (np.diff(scores, axis=1) <= 0).all()
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)  # no better row left out
        true_scores = np.einsum("qd,qkd->qk", queries, vectors[rows])
        np.testing.assert_allclose(scores, true_scores, atol=1e-5)  # each row with its own score
        assert all(len(set(r) ^ set(w)) <= 2 for r, w in zip(rows, want_rows, strict=True))  # ties
    allowed = np.zeros(N, bool)
    allowed[::7] = True
    truth = _exact(vectors, queries, 20, np.flatnonzero(allowed))
    for limit in (vectors_module._EXACT_MASK_LIMIT, 0):  # the allowed rows alone; the masked product
        monkeypatch.setattr(vectors_module, "_EXACT_MASK_LIMIT", limit)
        scores, rows = index.search(queries, 20, allowed)
        np.testing.assert_array_equal(rows, truth)
        scores, rows = index.search(queries, 1000, allowed)  # fewer allowed rows than k
        assert rows.shape == (n_queries, allowed.sum()) and allowed[rows].all()
        assert (np.diff(scores, axis=1) <= 0).all()


@pytest.mark.parametrize("kind", ["flat", "binary"])  # the BLAS path; the rescored candidates
def test_a_vector_scores_the_same_wherever_it_sits_and_copies_tie_in_row_order(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BLAS rounds a row's product by where it sits in the matrix (the same pair differs by an
    ulp between matrices of other sizes); a score must not, or an updated index (vectors in
    several segments) and a fresh build of the same documents order tied documents apart."""
    import densa.index.vectors as vectors_module

    monkeypatch.setattr(vectors_module, "_BLAS_MIN_QUERIES", 1)  # flat: every batch a BLAS product
    rng = np.random.default_rng(3)
    vector = _unit(rng.normal(size=(1, DIM)))[0]
    queries = _unit(rng.normal(size=(4, DIM)))
    config = VectorIndexConfig(kind=kind)  # type: ignore[arg-type]
    seen = set()
    for n in (1, 2, 5, 13, 64, 100):
        for at in {0, n - 1}:
            vectors = _unit(rng.normal(size=(n, DIM)))
            vectors[at] = vector
            index = VectorIndex.build(vectors, config)
            for allowed in (None, np.arange(n) != (at + 1) % n if n > 1 else None):
                for batch in (queries, queries[:1]):
                    scores, rows = index.search(batch, n, allowed)
                    seen.add(scores[rows == at].tobytes())
    assert len(seen) == 2  # the four queries' scores, and the first query's alone, everywhere
    import faiss

    reference = faiss.IndexFlatIP(DIM)
    reference.add(vector[None, :])
    assert seen == {reference.search(queries, 1)[0].tobytes(), reference.search(queries[:1], 1)[0].tobytes()}
    copies = _unit(rng.normal(size=(40, DIM)))
    copies[[31, 2, 17]] = vector
    scores, rows = VectorIndex.build(copies, config).search(queries, 40)
    for query_rows, query_scores in zip(rows, scores, strict=True):
        at = np.flatnonzero(np.isin(query_rows, [2, 17, 31]))
        assert query_rows[at].tolist() == [2, 17, 31] and np.ptp(query_scores[at]) == 0
        assert at.tolist() == list(range(at[0], at[0] + 3))  # side by side


def test_bad_configs() -> None:
    with pytest.raises(ConfigError):
        VectorIndexConfig(kind="lsh")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must divide"):
        VectorIndex.build(np.zeros((1, 60), np.float32), VectorIndexConfig(kind="ivf-pq", pq_m=7))


def test_search_threads_are_set_for_the_process_and_checked() -> None:
    import faiss
    from threadpoolctl import threadpool_info, threadpool_limits

    from densa.index import set_search_threads

    before = faiss.omp_get_max_threads()
    try:
        with threadpool_limits(limits=None):  # changes nothing; restores each library's own on exit
            set_search_threads(1)
            assert faiss.omp_get_max_threads() == 1
            assert {b["num_threads"] for b in threadpool_info() if b["user_api"] == "blas"} == {1}
    finally:
        faiss.omp_set_num_threads(before)
    with pytest.raises(ConfigError, match="positive"):
        set_search_threads(0)
