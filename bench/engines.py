"""FAISS against real engines (Qdrant local mode, milvus-lite) as densa's dense backend.

Two parts, one run, same vectors and queries:

1. **Quality.** For each dataset, a copy of its bench index (``bench/work/<dataset>``, MiniLM,
   FAISS flat) gets its dense vectors exported into Qdrant and Milvus as two more channels
   (``Index.copy_channel``: no re-encoding, exact kinds), and ``densa eval`` runs through each:
   nDCG@10 and Recall@100 of the dense channel alone and fused with BM25 (the default hybrid),
   with the difference from FAISS; and the end-to-end query p50 (``Searcher.hits``, one query at
   a time, queries encoded as ``densa search`` does by default).
2. **Scale.** The 1M bench's vectors (``bench/scale_1m.py``: real passages, grown), cut to
   ``--n`` (default 100k), in one segment: FAISS HNSW, Milvus-lite HNSW (same M, efConstruction,
   ef) and Qdrant local mode (exact: local mode has no HNSW). Recall@10 against exact search,
   search p50 (one query vector at a time, vector in, ids out) and the time to write the part.

Run::

    .venv/bin/python bench/engines.py --data ../shared/data [--n 100000]
    .venv/bin/python bench/engines.py --parts scale --n 1000000 --name engines_1m --engines milvus

Writes ``bench/results/engines.{json,md}``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import DEFAULT_DATA, cached_index, latency_ms, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.evaluate import evaluate_dataset
from densa.index import Index, VectorIndex, VectorIndexConfig
from densa.index.engines import EngineLocation, EnginePart, close_all, write_engine_part
from densa.search import SearchConfig, Searcher
from scale_1m import DATASETS, KINDS, grow, real_base

ENGINES = ("qdrant", "milvus")


def quality(data: Path, datasets: list[str], latency_queries: int) -> list[dict[str, Any]]:
    rows = []
    for name in datasets:
        dataset = BeirDataset(data / name)
        source = cached_index(dataset.root).path
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            shutil.copytree(source, path)
            index = Index.open(path)
            write_s = {}
            for engine in ENGINES:
                start = time.perf_counter()
                index = index.copy_channel("dense", f"dense-{engine}", VectorIndexConfig(engine=engine))
                write_s[engine] = time.perf_counter() - start
            texts = [q.text for q in dataset.queries("test")][:latency_queries]
            baseline: dict[str, float] = {}
            for backend in ("faiss", *ENGINES):
                channel = "dense" if backend == "faiss" else f"dense-{backend}"
                for mode in (channel, f"{channel}+bm25"):
                    searcher = Searcher(index, SearchConfig(mode=mode))
                    result, _ = evaluate_dataset(searcher, dataset, "test", ["ndcg@10", "recall@100"])
                    kind = "dense" if "+" not in mode else "hybrid"
                    if backend == "faiss":
                        baseline[kind] = result.metrics["ndcg@10"]
                    timing = latency_ms(lambda q, s=searcher: s.hits([q], 10), texts)
                    rows.append(
                        {
                            "dataset": name,
                            "backend": backend,
                            "mode": kind,
                            "ndcg@10": result.metrics["ndcg@10"],
                            "recall@100": result.metrics["recall@100"],
                            "ndcg_diff_vs_faiss": result.metrics["ndcg@10"] - baseline[kind],
                            "e2e_p50_ms": timing["p50_ms"],
                            "write_s": write_s.get(backend),
                        }
                    )
                    print(rows[-1], flush=True)
            index.close()
            close_all()
    return rows


def scale(
    data: Path, n: int, latency_queries: int, engines: tuple[str, ...] = ENGINES
) -> list[dict[str, Any]]:
    base, _, real = real_base(data, list(DATASETS))
    vectors = grow(base, n)
    queries = [q.text for name in DATASETS for q in BeirDataset(data / name).queries("test")]
    query_vectors = real.encode_queries(queries)
    _, truth = VectorIndex.build(vectors, VectorIndexConfig()).search(query_vectors, 10)
    sample = [str(i) for i in range(0, len(queries), max(1, len(queries) // latency_queries))][
        :latency_queries
    ]
    hnsw = KINDS["hnsw"]
    rows = []

    def measure(label: str, part: Any, params: str, write_s: float) -> None:
        _, found = part.search(query_vectors, 10)
        recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
        timing = latency_ms(lambda q: part.search(query_vectors[int(q)][None, :], 10), sample)
        rows.append(
            {**timing, "n": n, "backend": label, "params": params, "write_s": write_s, "recall@10": recall}
        )
        print(rows[-1], flush=True)

    start = time.perf_counter()
    faiss_part = VectorIndex.build(vectors, hnsw)
    measure("faiss hnsw", faiss_part, "M=32 efC=80 efS=64", time.perf_counter() - start)
    del faiss_part
    with tempfile.TemporaryDirectory() as tmp:
        for engine, config, params in (
            ("milvus", VectorIndexConfig(**{**hnsw.to_dict(), "engine": "milvus"}), "HNSW M=32 efC=80 ef=64"),
            ("qdrant", VectorIndexConfig(engine="qdrant"), "local mode (exact)"),
        ):
            if engine not in engines:
                continue
            folder = Path(tmp) / engine / "segments" / "seg-000001" / "dense"
            start = time.perf_counter()
            write_engine_part(EngineLocation.parse(engine), vectors, folder, config)
            measure(
                f"{engine} {'lite' if engine == 'milvus' else 'local'}",
                EnginePart.load(folder),
                params,
                time.perf_counter() - start,
            )
        close_all()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--parts", default="quality,scale", help="quality, scale or both")
    parser.add_argument("--name", default="engines", help="results file name (bench/results/NAME.*)")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="engines of the scale part (Qdrant's local mode inserts point by point with np.append: "
        "quadratic, hours at 1M)",
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    quality_rows = quality(args.data, args.datasets, args.latency_queries) if "quality" in parts else []
    engines = tuple(args.engines.split(","))
    scale_rows = scale(args.data, args.n, args.latency_queries, engines) if "scale" in parts else []
    table = markdown_table(
        ["dataset", "backend", "mode", "nDCG@10", "Recall@100", "nDCG@10 - FAISS", "e2e p50 ms", "export s"],
        [
            [
                r["dataset"],
                r["backend"],
                r["mode"],
                r["ndcg@10"],
                r["recall@100"],
                r["ndcg_diff_vs_faiss"],
                r["e2e_p50_ms"],
                "" if r["write_s"] is None else round(r["write_s"], 1),
            ]
            for r in quality_rows
        ],
    )
    if not quality_rows:
        table = ""
    table += "\n\nSame vectors, one segment:\n\n" + markdown_table(
        ["vectors", "backend", "index", "write s", "recall@10", "search p50 ms", "search p99 ms"],
        [
            [
                r["n"],
                r["backend"],
                r["params"],
                round(r["write_s"], 1),
                r["recall@10"],
                r["p50_ms"],
                r["p99_ms"],
            ]
            for r in scale_rows
        ],
    )
    command = "python bench/engines.py " + " ".join(sys.argv[1:])
    write_results(args.name, {"quality": quality_rows, "scale": scale_rows}, table, command)
    print(table)


if __name__ == "__main__":
    main()
