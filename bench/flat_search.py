"""Exact (``flat``) search: FAISS's own ``IndexFlatIP.search`` against densa's ``VectorIndex``
(BLAS products over the same float store), one thread each, as the server runs them.

Below ``faiss.cvar.distance_compute_blas_threshold`` queries (128,000 in faiss-cpu 1.15) FAISS
scores query by query, reading every vector once per query; one ``vectors @ queries.T``
product reads them once per batch. Random unit vectors (384 dimensions, MiniLM's); the rows
found are compared too.

Run::

    PYTHONPATH=src:bench .venv/bin/python bench/flat_search.py

Writes ``bench/results/flat_search.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import faiss
import numpy as np

from common import markdown_table, write_results
from densa.index import VectorIndex, VectorIndexConfig, set_search_threads
from densa.index.vectors import _exact_top_k  # the BLAS path alone, whatever densa would pick

DIM, K = 384, 100


def best_ms(fn: Callable[[], object], budget_s: float = 1.0) -> float:
    """The fastest of repeated calls (at least 3, about ``budget_s`` in all), in ms."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_183, 20_000, 100_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 6, 16, 32])
    args = parser.parse_args()
    set_search_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        reference = faiss.IndexFlatIP(DIM)
        reference.add(vectors)
        index = VectorIndex.build(vectors, VectorIndexConfig(kind="flat"))
        for batch in args.batches:
            queries = rng.standard_normal((batch, DIM)).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
            same = float(np.mean(index.search(queries, K)[1] == reference.search(queries, K)[1]))
            faiss_ms = best_ms(lambda: reference.search(queries, K))  # noqa: B023
            densa_ms = best_ms(lambda: index.search(queries, K))  # noqa: B023
            blas_ms = best_ms(lambda: _exact_top_k(vectors, queries, K))  # noqa: B023
            rows.append(
                {
                    "vectors": n,
                    "queries": batch,
                    "faiss_ms": faiss_ms,
                    "blas_ms": blas_ms,
                    "densa_ms": densa_ms,
                    "speed_up": faiss_ms / densa_ms,
                    "same_rows": same,
                }
            )
            print(rows[-1], flush=True)
    headers = [
        "vectors",
        "queries in the batch",
        "FAISS IndexFlatIP ms",
        "BLAS product + exact rescoring ms",
        "densa flat ms",
        "speed-up",
        "same rows",
    ]
    keys = ["vectors", "queries", "faiss_ms", "blas_ms", "densa_ms", "speed_up", "same_rows"]
    table = markdown_table(headers, [[round(r[key], 3) for key in keys] for r in rows])
    payload = {"k": K, "dim": DIM, "threads": 1, "faiss": faiss.__version__, "results": rows}
    write_results("flat_search", payload, table, "python bench/flat_search.py " + " ".join(sys.argv[1:]))
    print(table)


if __name__ == "__main__":
    main()
