"""Choose the hybrid fusion defaults on SciFact's *train* queries (never on test).

Dense and BM25 runs (depth 100) are computed once for the 809 train queries; every
candidate fusion is scored by nDCG@10 on train. The best RRF and the best weighted
configuration are reported, with their test numbers shown for information only.

Run::

    .venv/bin/python bench/tune_hybrid.py --data ../shared/data

Writes ``bench/results/tune_hybrid.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from itertools import product
from pathlib import Path

from common import DEFAULT_DATA, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.evaluate import evaluate
from densa.fuse import FusionConfig, fuse_runs
from densa.search import SearchConfig, Searcher
from densa.types import Run


def candidates() -> list[FusionConfig]:
    configs = [
        FusionConfig(method="rrf", rrf_k=k, weights=(w, 1.0))
        for k, w in product((10, 30, 60, 100), (0.5, 1.0, 1.5, 2.0))
    ]
    configs += [
        FusionConfig(method="weighted", weights=(w, round(1 - w, 2)), normalization=n)
        for w, n in product((0.3, 0.4, 0.5, 0.6, 0.7, 0.8), ("minmax", "zscore"))
    ]
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    dataset = BeirDataset(args.data / "scifact")
    index = cached_index(dataset.root)
    runs: dict[str, tuple[Run, Run]] = {}
    for split in ("train", "test"):
        queries = dataset.queries(split)
        dense = Searcher(index, SearchConfig(mode="dense")).search(queries, 100)
        bm25 = Searcher(index, SearchConfig(mode="bm25")).search(queries, 100)
        runs[split] = (dense, bm25)
    rows = []
    for config in candidates():
        scores = {
            split: evaluate(
                fuse_runs(list(runs[split]), config, 100), dataset.qrels(split), ["ndcg@10"]
            ).metrics["ndcg@10"]
            for split in ("train", "test")
        }
        rows.append(
            {"config": config.__dict__, "train_ndcg@10": scores["train"], "test_ndcg@10": scores["test"]}
        )
    singles = {
        f"{name} {split}": evaluate(runs[split][i], dataset.qrels(split), ["ndcg@10"]).metrics["ndcg@10"]
        for i, name in enumerate(("dense", "bm25"))
        for split in ("train", "test")
    }
    best = {
        method: max((r for r in rows if r["config"]["method"] == method), key=lambda r: r["train_ndcg@10"])
        for method in ("rrf", "weighted")
    }
    table = markdown_table(
        ["method", "rrf_k", "weights (dense, bm25)", "normalisation", "train nDCG@10", "test nDCG@10"],
        [
            [
                r["config"]["method"],
                r["config"]["rrf_k"],
                r["config"]["weights"],
                r["config"]["normalization"],
                r["train_ndcg@10"],
                r["test_ndcg@10"],
            ]
            for r in sorted(rows, key=lambda r: -r["train_ndcg@10"])
        ],
    )
    singles_table = markdown_table(["run", "nDCG@10"], [[k, v] for k, v in singles.items()])
    text = f"Single runs:\n\n{singles_table}\n\nFusion candidates, best on train first:\n\n{table}"
    command = "python bench/tune_hybrid.py " + " ".join(sys.argv[1:])
    write_results(
        "tune_hybrid", {"best_on_train": best, "singles": singles, "candidates": rows}, text, command
    )
    print(text.split("\n\n")[0:4])
    for method, r in best.items():
        print(method, r)


if __name__ == "__main__":
    main()
