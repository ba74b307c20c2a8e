"""BM25, dense, RRF hybrid and weighted hybrid on each BEIR dataset (test split).

Uses the flat indexes left in ``bench/work/`` by ``bench/core.py`` (built if missing).

Run::

    .venv/bin/python bench/hybrid.py --data ../shared/data

Writes ``bench/results/hybrid.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import DEFAULT_DATA, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.evaluate import evaluate_dataset
from densa.fuse import FusionConfig
from densa.search import SearchConfig, Searcher

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")
MODES = {
    "bm25": SearchConfig(mode="bm25"),
    "dense": SearchConfig(mode="dense"),
    "hybrid rrf (k=60)": SearchConfig(mode="hybrid", fusion=FusionConfig(method="rrf", weights=(1.0, 1.0))),
    "hybrid weighted, equal (old default)": SearchConfig(
        mode="hybrid", fusion=FusionConfig(method="weighted", normalization="zscore")
    ),
    "hybrid auto (default, measured without labels)": SearchConfig(mode="hybrid"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        index = cached_index(dataset.root)
        for mode, config in MODES.items():
            result, _ = evaluate_dataset(
                Searcher(index, config), dataset, "test", ["ndcg@10", "recall@100", "mrr@10"]
            )
            rows.append({"dataset": name, "mode": mode, **result.metrics})
    table = markdown_table(
        ["dataset", "mode", "nDCG@10", "Recall@100", "MRR@10", "queries"],
        [[r["dataset"], r["mode"], r["ndcg@10"], r["recall@100"], r["mrr@10"], r["queries"]] for r in rows],
    )
    command = "python bench/hybrid.py " + " ".join(sys.argv[1:])
    write_results("hybrid", {"model": "all-MiniLM-L6-v2 (bundled)", "results": rows}, table, command)
    print(table)


if __name__ == "__main__":
    main()
