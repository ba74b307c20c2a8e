"""Label-free fusion: each channel alone, fixed fusions, and the measured default, per dataset.

The default fusion (``FusionConfig(method="auto")``) takes its weights from pseudo-queries
cut out of each corpus (``densa.search.calibrate``); no qrels are read to choose them. The
table checks issue 14's rule: fused never below the better channel by more than 0.005
nDCG@10, and at least 0.02 above it where the channels are within 0.05 of each other.

Run::

    .venv/bin/python bench/fusion.py --data ../shared/data

Uses the flat indexes in ``bench/work/`` (built if missing). Writes
``bench/results/fusion.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.evaluate import evaluate_dataset
from densa.fuse import FusionConfig
from densa.search import SearchConfig, Searcher
from densa.search.calibrate import calibrate, describe

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")
FIXED = {
    "weighted, equal, z-score (old default)": FusionConfig(method="weighted", normalization="zscore"),
    "weighted, equal, min-max": FusionConfig(method="weighted", normalization="minmax"),
    "rrf (k=60)": FusionConfig(method="rrf"),
}


def _score(
    index: Any, dataset: BeirDataset, mode: str, fusion: FusionConfig | None = None
) -> dict[str, float]:
    config = SearchConfig(mode=mode, fusion=fusion or FusionConfig())
    result, _ = evaluate_dataset(Searcher(index, config), dataset, "test", ["ndcg@10", "recall@100"])
    return result.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--queries", type=int, default=400, help="pseudo-queries per corpus")
    args = parser.parse_args()
    rows, checks = [], []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        index = cached_index(dataset.root)
        channels = list(index.channels)
        start = time.perf_counter()
        calibration = calibrate(index, args.queries)
        seconds = time.perf_counter() - start
        note = describe(calibration, channels)
        print(name, note, f"({seconds:.1f}s)", flush=True)

        alone = {c: _score(index, dataset, c) for c in channels}
        for c, m in alone.items():
            rows.append({"dataset": name, "run": c, **m})
        for label, fusion in FIXED.items():
            rows.append({"dataset": name, "run": label, **_score(index, dataset, "hybrid", fusion)})
        searcher = Searcher(index, SearchConfig(mode="hybrid"))
        auto = _score(index, dataset, "hybrid")
        rows.append({"dataset": name, "run": "auto (default, measured)", **auto})
        values = [m["ndcg@10"] for m in alone.values()]
        best, close = max(values), max(values) - min(values) <= 0.05
        need = best + 0.02 if close else best - 0.005
        checks.append(
            {
                "dataset": name,
                "best channel": best,
                "channels within 0.05": close,
                "needed": need,
                "auto": auto["ndcg@10"],
                "met": auto["ndcg@10"] >= need,
                "fusion": searcher.fusion().weights,
                "normalization": searcher.fusion().normalization,
                "calibration": note,
                "calibration_seconds": seconds,
            }
        )
    table = markdown_table(
        ["dataset", "run", "nDCG@10", "Recall@100"],
        [[r["dataset"], r["run"], r["ndcg@10"], r["recall@100"]] for r in rows],
    )
    table += (
        "\n\nTarget (issue 14): auto >= best channel - 0.005, "
        "or >= best + 0.02 where the channels are within 0.05:\n\n"
    )
    table += markdown_table(
        [
            "dataset",
            "best channel",
            "within 0.05",
            "needed",
            "auto",
            "met",
            "measured weights",
            "measuring (s)",
        ],
        [
            [
                c["dataset"],
                c["best channel"],
                "yes" if c["channels within 0.05"] else "no",
                c["needed"],
                c["auto"],
                "yes" if c["met"] else "NO",
                ", ".join(f"{k}={v:g}" for k, v in (c["fusion"] or {}).items()) + f" ({c['normalization']})",
                round(c["calibration_seconds"], 1),
            ]
            for c in checks
        ],
    )
    command = "python bench/fusion.py " + " ".join(sys.argv[1:])
    write_results("fusion", {"results": rows, "checks": checks}, table, command)
    print(table)


if __name__ == "__main__":
    main()
