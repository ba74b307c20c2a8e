"""SciFact nDCG@10 per index kind and quantisation, with the memory of each kind's codes.

The SciFact index of the bundled MiniLM (flat, built once under ``bench/work/scifact``) is
searched through each vector index kind built from the same vectors: the documents, BM25
and queries stay the same, only the vector search changes. ``binary, rescore=1`` is the
sign-bit Hamming search without float rescoring (the top k by Hamming distance, ordered
by their float scores).

Run::

    .venv/bin/python bench/index_kinds.py --data ../shared/data

Writes ``bench/results/index_kinds.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, RESULTS, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.evaluate import evaluate_dataset
from densa.index import VectorIndex, VectorIndexConfig
from densa.search import Searcher

METRICS = ["ndcg@10", "recall@100"]
KINDS = {
    "flat": VectorIndexConfig(kind="flat"),
    "hnsw": VectorIndexConfig(kind="hnsw"),
    "hnsw-sq8": VectorIndexConfig(kind="hnsw-sq8"),
    "ivf-flat": VectorIndexConfig(kind="ivf-flat"),
    "ivf-sq8": VectorIndexConfig(kind="ivf-sq8"),
    "ivf-pq": VectorIndexConfig(kind="ivf-pq"),
    "ivf-pq, rescore=1": VectorIndexConfig(kind="ivf-pq", rescore=1),
    "binary": VectorIndexConfig(kind="binary"),
    "binary, rescore=1": VectorIndexConfig(kind="binary", rescore=1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    command = "python bench/index_kinds.py " + " ".join(sys.argv[1:])
    scifact = BeirDataset(args.data / "scifact")
    index = cached_index(scifact.root)
    ids = index.vectors.ids()
    vectors = index.vectors.reconstruct(ids)
    float_bytes = vectors.size * 4
    rows: dict[str, Any] = {}
    for name, config in KINDS.items():
        vi = VectorIndex.create(vectors.shape[1], config)
        vi.add(vectors, ids)
        index.vectors = vi
        result, _ = evaluate_dataset(Searcher(index), scifact, "test", METRICS)
        rows[name] = {
            **result.metrics,
            "params": {k: v for k, v in vi.config.to_dict().items() if k != "kind"},
            "codes_bytes": vi.memory_bytes(),
            "fraction_of_float": vi.memory_bytes() / float_bytes,
        }
        print(name, rows[name], flush=True)
    flat = rows["flat"]["ndcg@10"]
    for row in rows.values():
        row["ndcg_kept"] = row["ndcg@10"] / flat
    table = markdown_table(
        ["kind", "nDCG@10", "kept vs flat", "Recall@100", "codes memory vs float32"],
        [
            [name, r["ndcg@10"], r["ndcg_kept"], r["recall@100"], f"1/{1 / r['fraction_of_float']:.0f}"]
            for name, r in rows.items()
        ],
    )
    table += (
        "\n\nThe lossy kinds keep the float vectors on disk (memory-mapped) for rescoring, "
        "training and exact filtered search; 'codes memory' is what the search structure holds "
        "(HNSW graphs add about 2·M·4 bytes per vector on top)."
    )
    write_results("index_kinds", {"passages": len(ids), "rows": rows}, table, command)
    print((RESULTS / "index_kinds.md").read_text())


if __name__ == "__main__":
    main()
