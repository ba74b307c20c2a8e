"""The fine-tuned dense channel's levers on SciFact, each chosen on dev: token limits (trained at
128 or 256 tokens, indexed at 128 or 256) and which checkpoint is kept (the last, or the best on
dev); each variant alone and fused with BM25.

Each token limit trains ``bench/train_scifact.py``'s recipe once (``SHARED``: 3 epochs, dev scored
and a checkpoint saved every 26 steps, ``keep_best``) on SciFact *train* minus the 81 dev
questions that ``train_scifact.dev_split`` holds out, with the hard negatives
``bench/best_scifact.py`` mines (BM25, 4 per question): the run's folder holds the best-on-dev
weights, its last checkpoint the weights a run without ``keep_best`` saves. Each is
added as a channel to a copy of the bench index and scored on dev (those 81 questions, their
train qrels) and test: alone, and fused with BM25 by z-score weights chosen on dev (0.1 grid).
The variant with the best fused dev nDCG@10 is marked; test figures are reported for all.

Run::

    .venv/bin/python bench/dense_length.py --data ../shared/data

Models and indexes are cached under ``bench/work/`` (a rerun resumes). Writes
``bench/results/dense_length.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from best_scifact import train_negatives, weight_grid
from common import DEFAULT_DATA, WORK, markdown_table, with_channel, write_results
from densa.corpus import BeirDataset
from densa.encode import EncoderConfig
from densa.evaluate import evaluate
from densa.fuse import FusionConfig, fuse_runs
from densa.index import DenseChannel, Index
from densa.search import SearchConfig, Searcher
from densa.train import read_dpr, train_bi_encoder
from densa.types import Qrels, Query, Run
from train_scifact import SHARED, dev_split

METRICS = ["ndcg@10", "recall@100", "mrr@10"]


@dataclass(frozen=True)
class Variant:
    name: str
    train_length: int
    index_length: int
    keep_best: bool = False

    @property
    def run(self) -> Path:
        """The training run: one per token limit, trained with ``keep_best`` (its folder holds
        the best-on-dev weights, and its last checkpoint the last ones)."""
        return WORK / f"minilm-scifact-{self.train_length}-keep-best"

    def model(self) -> Path:
        if self.keep_best:
            return self.run
        return self.run / "checkpoints" / f"checkpoint-{last_step(self.run)}"


def last_step(run: Path) -> int:
    return max(int(p.name.rsplit("-", 1)[1]) for p in (run / "checkpoints").glob("checkpoint-*"))


VARIANTS = (
    Variant("train 128, last checkpoint, index 128 (best_scifact's dense-ft)", 128, 128),
    Variant("train 128, last checkpoint, index 256", 128, 256),
    Variant("train 128, best-on-dev checkpoint, index 128", 128, 128, keep_best=True),
    Variant("train 128, best-on-dev checkpoint, index 256", 128, 256, keep_best=True),
    Variant("train 256, last checkpoint, index 256", 256, 256),
    Variant("train 256, best-on-dev checkpoint, index 256", 256, 256, keep_best=True),
)


def channel_name(variant: Variant) -> str:
    best = "-best" if variant.keep_best else ""
    return f"ft{variant.train_length}{best}-at{variant.index_length}"


def run_of(index: Index, mode: str, queries: list[Query]) -> Run:
    return Run(Searcher(index, SearchConfig(mode=mode)).search(queries, 100).scores, name=mode)


def with_bm25(channel: str, runs: dict[str, Run], dev_qrels: Qrels) -> tuple[FusionConfig, float]:
    """The z-score weights of ``channel`` + bm25 best on dev."""
    best: tuple[FusionConfig, float] | None = None
    for weights in weight_grid(2):
        config = FusionConfig(
            method="weighted",
            weights=dict(zip((channel, "bm25"), weights, strict=True)),
            normalization="zscore",
        )
        fused = fuse_runs([runs[channel], runs["bm25"]], config, k=100)
        score = evaluate(fused, dev_qrels, ["ndcg@10"]).metrics["ndcg@10"]
        if best is None or score > best[1] + 1e-9:
            best = (config, score)
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    scifact = BeirDataset(args.data / "scifact")
    examples = read_dpr(train_negatives(scifact))  # best_scifact.py's
    dev_queries, dev_qrels = dev_split(scifact, examples)
    test_queries, test_qrels = scifact.queries("test"), scifact.qrels("test")
    index: Index | None = None
    for variant in VARIANTS:
        run = variant.run
        if not (run / "densa_training.json").exists():
            print(f"training {run.name}", flush=True)
            config = replace(SHARED, max_length=variant.train_length, keep_best=True)
            train_bi_encoder(examples, run, config)
        encoder = EncoderConfig(model=str(variant.model()), max_length=variant.index_length)
        index, _ = with_channel(scifact.root, "dense-length", channel_name(variant), DenseChannel(encoder))
    assert index is not None
    training = {}  # what each run's own record says (also when it was trained by an earlier call)
    for run in sorted({v.run for v in VARIANTS}):
        record = json.loads((run / "densa_training.json").read_text(encoding="utf-8"))
        training[run.name] = {
            "minutes (its last call)": record["seconds_this_run"] / 60,
            "best dev": record["dev_ndcg@10"],
            "kept_checkpoint": record["kept_checkpoint"],
        }

    rows: list[dict[str, Any]] = []
    dev_runs = {"bm25": run_of(index, "bm25", dev_queries)}
    test_runs = {"bm25": run_of(index, "bm25", test_queries)}
    for variant in VARIANTS:
        name = channel_name(variant)
        dev_runs[name], test_runs[name] = run_of(index, name, dev_queries), run_of(index, name, test_queries)
        fusion, fused_dev = with_bm25(name, dev_runs, dev_qrels)
        fused_test = fuse_runs([test_runs[name], test_runs["bm25"]], fusion, k=100)
        weights = dict(fusion.weights or {})
        rows.append(
            {
                "variant": variant.name,
                "channel": name,
                "dev ndcg@10": evaluate(dev_runs[name], dev_qrels, ["ndcg@10"]).metrics["ndcg@10"],
                "test": evaluate(test_runs[name], test_qrels, METRICS).metrics,
                "fused weight": weights[name],
                "fused dev ndcg@10": fused_dev,
                "fused test": evaluate(fused_test, test_qrels, METRICS).metrics,
            }
        )
    chosen = max(rows, key=lambda r: round(r["fused dev ndcg@10"], 6))
    table = markdown_table(
        [
            "variant",
            "dev nDCG@10",
            "test nDCG@10",
            "test Recall@100",
            "+ bm25: dense weight (dev)",
            "+ bm25 dev nDCG@10",
            "+ bm25 test nDCG@10",
            "chosen on dev",
        ],
        [
            [
                r["variant"],
                r["dev ndcg@10"],
                r["test"]["ndcg@10"],
                r["test"]["recall@100"],
                r["fused weight"],
                r["fused dev ndcg@10"],
                r["fused test"]["ndcg@10"],
                "**yes**" if r is chosen else "",
            ]
            for r in rows
        ],
    )
    command = "python bench/dense_length.py " + " ".join(sys.argv[1:])
    write_results(
        "dense_length",
        {"rows": rows, "chosen": chosen["channel"], "training": training},
        table,
        command,
    )
    print(table)


if __name__ == "__main__":
    main()
