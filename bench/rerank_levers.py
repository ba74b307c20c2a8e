"""What each training lever gives the cross-encoder reranker (issue 14), on SciFact.

Every lever is one ``densa train-reranker`` run from the bundled MiniLM, with the same budget
(``--epochs``, default 1, batch 16, lr 5e-5; another number of epochs is reported as its own
row, e.g. "listwise-bm25, 4 epochs") on SciFact *train* minus the 81 dev questions
that ``split_dev`` carves the same way in every run. Each model then reranks the same
candidates: the default hybrid's (zero-shot MiniLM + BM25, label-free ``auto`` fusion) top-100
of the dev questions and of SciFact test. The mixing weight (``--rerank-weight``, 0.1 … 1.0)
is chosen on dev; test is scored at that weight and at 1 (the reranker alone).

Levers (``--levers``, comma-separated):

* ``listwise-bm25``: the default recipe, listwise loss, 4 BM25 hard negatives a question plus
  2 in-batch negatives, 192 tokens;
* ``listwise-hybrid``: the same loss with 7 negatives mined by the hybrid (the stage the
  reranker reorders, so training sees the candidates it will rank);
* ``distill-hybrid``: listwise distillation from the hybrid's scores over the positive and
  its 7 hybrid negatives (``--loss distill``);
* ``distill-hybrid-256``: the same with 256 tokens a pair (SciFact abstracts are long).

Run::

    .venv/bin/python bench/rerank_levers.py --data ../shared/data

Models, negatives and the index are cached under ``bench/work/``, so a rerun resumes.
Writes ``bench/results/rerank_levers.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, RESULTS, WORK, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.evaluate import evaluate
from densa.rerank import CrossEncoderReranker
from densa.search import SearchConfig, Searcher
from densa.train import (
    MiningConfig,
    RerankerConfig,
    mine_dataset,
    read_dpr,
    train_reranker,
    write_dpr,
)
from densa.types import Qrels
from train_scifact import RERANK, WEIGHTS, CachedReranker, dev_split

METRICS = ["ndcg@10", "recall@100", "mrr@10"]
BASE = RerankerConfig(epochs=1.0, eval_steps=25, save_steps=25, logging_steps=10)
MINERS = {
    "bm25": MiningConfig(miner="bm25", depth=30, per_query=4),
    "hybrid": MiningConfig(miner="hybrid", depth=30, per_query=7),
}
LEVERS: dict[str, tuple[str, RerankerConfig]] = {
    "listwise-bm25": ("bm25", BASE),
    "listwise-hybrid": ("hybrid", replace(BASE, negatives_per_question=7)),
    "distill-hybrid": ("hybrid", replace(BASE, loss="distill", negatives_per_question=7)),
    "distill-hybrid-256": ("hybrid", replace(BASE, loss="distill", negatives_per_question=7, max_length=256)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--levers", default=",".join(LEVERS))
    parser.add_argument("--epochs", type=float, default=BASE.epochs)
    args = parser.parse_args()
    scifact = BeirDataset(args.data / "scifact")
    index = cached_index(scifact.root)
    command = "python bench/rerank_levers.py " + " ".join(sys.argv[1:])
    results_file = RESULTS / "rerank_levers.json"
    results: dict[str, Any] = json.loads(results_file.read_text())["results"] if results_file.exists() else {}

    def save() -> None:
        rows = [
            [
                name,
                r.get("minutes"),
                r.get("steps"),
                r.get("dev_choice"),
                r.get("test_first_stage"),
                r.get("test_alone"),
                r.get("test_mixed"),
            ]
            for name, r in results.items()
        ]
        headers = ["lever", "train min", "steps", "dev: best weight (nDCG@10)", "test: hybrid"]
        table = markdown_table([*headers, "test: reranker alone", "test: mixed at dev weight"], rows)
        write_results("rerank_levers", {"results": results}, table, command)

    examples: dict[str, list[Any]] = {}
    for miner, config in MINERS.items():
        path = WORK / f"scifact-train-{miner}-scored.jsonl"
        if not path.exists():
            write_dpr(mine_dataset(scifact, "train", config, None if miner == "bm25" else index.path), path)
        examples[miner] = read_dpr(path)
    assert (BASE.dev_fraction, BASE.seed) == (RERANK.dev_fraction, RERANK.seed)
    splits = [dev_split(scifact, ex) for ex in examples.values()]
    assert all(queries == splits[0][0] for queries, _ in splits), "the miners must leave one dev set"
    dev_queries, dev_qrels = splits[0]
    test, test_qrels = scifact.queries("test"), scifact.qrels("test")

    for lever in args.levers.split(","):
        name = lever if args.epochs == BASE.epochs else f"{lever}, {args.epochs:g} epochs"
        if name in results:
            continue
        miner, config = LEVERS[lever]
        config = replace(config, epochs=args.epochs)
        folder = WORK / f"reranker-lever-{lever}-{args.epochs:g}ep"
        if not (folder / "config.json").exists():
            train_reranker(examples[miner], folder, config)
        record = json.loads((folder / "densa_training.json").read_text())
        reranker = CachedReranker(CrossEncoderReranker(folder, batch_size=64, show_progress=True))

        def score(weight: float | None, queries: list[Any], qrels: Qrels, reranker: Any = reranker) -> float:
            config = SearchConfig(mode="hybrid", rerank_depth=100, rerank_weight=weight or 1.0)
            searcher = Searcher(index, config, reranker=None if weight is None else reranker)
            return float(evaluate(searcher.search(queries, 100), qrels, METRICS).metrics["ndcg@10"])

        dev = {w: score(w, dev_queries, dev_qrels) for w in WEIGHTS}
        best = max(WEIGHTS, key=lambda w: (dev[w], w))
        results[name] = {
            "miner": miner,
            "config": {k: v for k, v in record["config"].items() if k in ("loss", "epochs", "max_length")},
            "negatives": config.negatives_per_question,
            "minutes": round(record["seconds_this_run"] / 60, 1),
            "steps": record["steps"],
            "train_dev_ndcg@10": record.get("dev_ndcg@10"),
            "dev": dev,
            "dev_first_stage": score(None, dev_queries, dev_qrels),
            "dev_choice": f"{best} ({dev[best]:.4f})",
            "test_first_stage": score(None, test, test_qrels),
            "test_alone": score(1.0, test, test_qrels),
            "test_mixed": score(best, test, test_qrels),
        }
        save()
    print((RESULTS / "rerank_levers.md").read_text())


if __name__ == "__main__":
    main()
