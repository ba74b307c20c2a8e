"""``densa adapt`` without labels: zero-shot MiniLM against the adapted model, alone and fused.

For each dataset: copy the flat index of ``bench/work/<name>`` (built if missing) to
``bench/work/<name>-adapt``, run ``densa.train.adapt.adapt`` (pseudo-queries cut from the
corpus; no qrels read), then score dense / adapted / dense+bm25 / adapted+bm25 on the test
qrels. Issue 14's targets: adapted dense >= zero-shot dense + 0.02 nDCG@10 and adapted hybrid
>= zero-shot hybrid + 0.01, on every collection.

Run::

    .venv/bin/python bench/adapt.py --data ../shared/data [--queries 2000] [--pseudo title|keywords]

Writes ``bench/results/adapt.json`` and ``.md`` (``adapt-title.*`` for ``--pseudo title``, and so on).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, WORK, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.index import Index
from densa.train.adapt import PSEUDO_KINDS, AdaptConfig, adapt, before_after

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--queries", type=int, default=AdaptConfig().queries)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--pseudo", choices=PSEUDO_KINDS, default=AdaptConfig().pseudo)
    args = parser.parse_args()
    base = AdaptConfig()
    config = replace(
        base, queries=args.queries, pseudo=args.pseudo, train=replace(base.train, epochs=args.epochs)
    )
    rows, checks = [], []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        source = cached_index(dataset.root)
        target, model = WORK / f"{name}-adapt", WORK / f"{name}-adapted-model"
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(model, ignore_errors=True)
        shutil.copytree(source.path, target)
        start = time.perf_counter()
        result = adapt(Index.open(target), model, config, progress=False)
        minutes = (time.perf_counter() - start) / 60
        figures = before_after(result.index, dataset, "test", "dense", "adapted")
        print(name, f"{minutes:.1f} min", figures, flush=True)
        for label, metrics in figures.items():
            rows.append({"dataset": name, "run": label, **metrics})
        dense_gain = figures["adapted"]["ndcg@10"] - figures["dense"]["ndcg@10"]
        hybrid_gain = figures["adapted+bm25"]["ndcg@10"] - figures["dense+bm25"]["ndcg@10"]
        checks.append(
            {
                "dataset": name,
                "pseudo_queries": result.pseudo_queries,
                "kept": result.kept,
                "steps": result.training.steps,
                "minutes": minutes,
                "dense_gain": dense_gain,
                "hybrid_gain": hybrid_gain,
                "met": dense_gain >= 0.02 and hybrid_gain >= 0.01,
            }
        )
        report(args.pseudo, rows, checks)  # after every dataset: a stopped run keeps what it measured


def report(pseudo: str, rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> None:
    """Write the figures measured so far (``bench/results/adapt*.json`` and ``.md``)."""
    table = markdown_table(
        ["dataset", "run", "nDCG@10", "Recall@100"],
        [[r["dataset"], r["run"], r["ndcg@10"], r["recall@100"]] for r in rows],
    )
    table += "\n\nTargets (issue 14): dense +0.02, hybrid +0.01 nDCG@10 over zero-shot:\n\n"
    table += markdown_table(
        ["dataset", "pseudo-queries (kept)", "steps", "minutes", "dense gain", "hybrid gain", "met"],
        [
            [
                c["dataset"],
                f"{c['pseudo_queries']} ({c['kept']})",
                c["steps"],
                round(c["minutes"], 1),
                c["dense_gain"],
                c["hybrid_gain"],
                "yes" if c["met"] else "NO",
            ]
            for c in checks
        ],
    )
    command = "python bench/adapt.py " + " ".join(sys.argv[1:])
    results_name = "adapt" if pseudo == "cloze" else f"adapt-{pseudo}"
    write_results(results_name, {"pseudo": pseudo, "results": rows, "checks": checks}, table, command)
    print(table)


if __name__ == "__main__":
    main()
