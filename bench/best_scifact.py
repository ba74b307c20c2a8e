"""The strongest CPU pipeline densa makes for SciFact, every choice made on train/dev only.

Components (each trained on SciFact *train* minus its dev questions; ``split_dev`` carves the
same 10 % with the same seed in every trainer, so no component has seen a dev question):

* ``dense``: the zero-shot bundled MiniLM; ``bm25``; ``colbert``: ColBERT from MiniLM
  (``bench/colbert.py``'s recipe and model); ``dense-ft``: MiniLM fine-tuned
  (``bench/train_scifact.py``'s recipe);
* a cross-encoder reranker (``densa train-reranker``'s listwise loss) started from the
  fine-tuned bi-encoder's weights, with hard negatives mined by BM25 for the train questions,
  trained for ``RERANK_EPOCHS`` epochs (``bench/rerank_levers.py``: 2 epochs score 0.52 alone
  on the hybrid's candidates, 4 epochs 0.63; the training dev nDCG flattens near epoch 3).

Selection, on the 81 dev questions of SciFact train (their train qrels):

1. every non-empty set of channels, with weighted fusion (z-score or min-max) on a 0.1 grid of
   weights, and the label-free ``auto`` fusion: the best dev nDCG@10 wins (ties: fewer channels);
2. the reranker on that fusion's candidates: rerank depth (30 or 100) and rerank weight (0 to 1
   by 0.1) chosen on dev the same way.

The chosen pipeline is written to ``bench/results/best_scifact.pipeline.json``, then read back
and run on SciFact *test* through the same code as ``densa eval INDEX --pipeline FILE``; the
test numbers of every stage (each channel, each best set, with and without the reranker) are
reported beside it, with the query p50 the pipeline costs (one query at a time, 2 cores).

Run::

    .venv/bin/python bench/best_scifact.py --data ../shared/data

Steps are cached under ``bench/work/`` (negatives, models, index), so a rerun resumes.
Writes ``bench/results/best_scifact.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from colbert import TRAIN as COLBERT_TRAIN
from common import DEFAULT_DATA, RESULTS, WORK, latency_ms, markdown_table, with_channel, write_results
from densa.corpus import BeirDataset
from densa.encode import EncoderConfig
from densa.evaluate import evaluate
from densa.fuse import FusionConfig, fuse_runs
from densa.index import DenseChannel, Index
from densa.index.channels.colbert import ColbertChannel
from densa.rerank import load_reranker
from densa.search import SearchConfig, Searcher
from densa.search.pipeline import Pipeline, read_pipeline, write_pipeline
from densa.train import (
    MiningConfig,
    mine_dataset,
    read_dpr,
    train_bi_encoder,
    train_reranker,
    write_dpr,
)
from densa.train.colbert import train_colbert
from densa.types import Qrels, Query, Run
from train_scifact import RERANK, SHARED, CachedReranker, dev_split

METRICS = ["ndcg@10", "recall@100", "mrr@10"]
CHANNELS = ("dense", "bm25", "colbert", "dense-ft")
STEP = 0.1
RERANK_DEPTHS = (30, 100)
RERANK_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
PIPELINE = RESULTS / "best_scifact.pipeline.json"
RERANK_EPOCHS = 4.0


def train_negatives(scifact: BeirDataset) -> Path:
    """The SciFact train questions with 4 BM25 hard negatives each (mined once, cached)."""
    negatives = WORK / "scifact-train-negatives.jsonl"
    if not negatives.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        write_dpr(
            mine_dataset(scifact, "train", MiningConfig(miner="bm25", depth=30, per_query=4)), negatives
        )
    return negatives


def models(examples: list[Any]) -> dict[str, Path]:
    """The trained models, trained here if missing (cached under ``bench/work``)."""
    paths = {
        "dense-ft": WORK / "minilm-scifact",
        "colbert": WORK / "colbert-minilm-scifact",
        "reranker": WORK / f"reranker-from-minilm-scifact-{RERANK_EPOCHS:g}ep",
    }
    if not (paths["dense-ft"] / "densa_training.json").exists():
        train_bi_encoder(examples, paths["dense-ft"], SHARED)
    if not (paths["colbert"] / "densa_training.json").exists():
        train_colbert(examples, paths["colbert"], COLBERT_TRAIN)
    if not (paths["reranker"] / "densa_training.json").exists():
        config = replace(RERANK, base=str(paths["dense-ft"]), epochs=RERANK_EPOCHS)
        train_reranker(examples, paths["reranker"], config)
    return paths


def weight_grid(n: int) -> list[tuple[float, ...]]:
    """Weights of ``n`` rankings on a ``STEP`` grid of the simplex, each weight > 0."""
    units = round(1 / STEP)
    return [
        tuple(c * STEP for c in combo)
        for combo in itertools.product(range(1, units + 1), repeat=n)
        if sum(combo) == units
    ]


def choose_fusion(runs: dict[str, Run], qrels: Qrels) -> list[dict[str, Any]]:
    """Every channel set's best weighted fusion on dev (plus the single channels)."""
    best: list[dict[str, Any]] = []
    for size in range(1, len(CHANNELS) + 1):
        for names in itertools.combinations(CHANNELS, size):
            if size == 1:
                score = evaluate(runs[names[0]], qrels, ["ndcg@10"]).metrics["ndcg@10"]
                best.append({"mode": names[0], "fusion": FusionConfig(), "dev ndcg@10": score})
                continue
            top: dict[str, Any] | None = None
            for normalization in ("zscore", "minmax"):
                for weights in weight_grid(size):
                    config = FusionConfig(
                        method="weighted",
                        weights=dict(zip(names, weights, strict=True)),
                        normalization=normalization,
                    )
                    fused = fuse_runs([runs[n] for n in names], config, k=100)
                    score = evaluate(fused, qrels, ["ndcg@10"]).metrics["ndcg@10"]
                    if top is None or score > top["dev ndcg@10"] + 1e-9:
                        top = {"mode": "+".join(names), "fusion": config, "dev ndcg@10": score}
            assert top is not None
            best.append(top)
    return best


def named_runs(index: Index, queries: list[Query]) -> dict[str, Run]:
    out = {}
    for name in CHANNELS:
        run = Searcher(index, SearchConfig(mode=name)).search(queries, 100)
        out[name] = Run(run.scores, name=name)  # fuse_runs weighs runs by their names
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--latency-queries", type=int, default=50)
    args = parser.parse_args()
    command = "python bench/best_scifact.py " + " ".join(sys.argv[1:])
    scifact = BeirDataset(args.data / "scifact")
    examples = read_dpr(train_negatives(scifact))
    paths = models(examples)
    # zero-shot dense and bm25 (the bench index), colbert and the fine-tuned dense channel
    with_channel(scifact.root, "best", "colbert", ColbertChannel(str(paths["colbert"])))
    index, _ = with_channel(
        scifact.root, "best", "dense-ft", DenseChannel(EncoderConfig(model=str(paths["dense-ft"])))
    )
    assert (COLBERT_TRAIN.dev_fraction, COLBERT_TRAIN.seed) == (SHARED.dev_fraction, SHARED.seed)
    dev_queries, dev_qrels = dev_split(scifact, examples)
    test_queries, test_qrels = scifact.queries("test"), scifact.qrels("test")
    print(f"{len(dev_queries)} dev questions, {len(test_queries)} test queries", flush=True)

    dev_runs = named_runs(index, dev_queries)
    candidates = choose_fusion(dev_runs, dev_qrels)
    auto = Searcher(index, SearchConfig(mode="+".join(CHANNELS))).search(dev_queries, 100)
    candidates.append(
        {
            "mode": "+".join(CHANNELS),
            "fusion": FusionConfig(),
            "dev ndcg@10": evaluate(auto, dev_qrels, ["ndcg@10"]).metrics["ndcg@10"],
            "label-free": True,
        }
    )
    first = max(candidates, key=lambda c: (round(c["dev ndcg@10"], 6), -c["mode"].count("+")))
    print(
        "first stage chosen on dev:",
        first["mode"],
        first["fusion"],
        round(first["dev ndcg@10"], 4),
        flush=True,
    )

    reranker = CachedReranker(load_reranker(paths["reranker"], show_progress=True))
    first_config = SearchConfig(mode=first["mode"], fusion=first["fusion"])

    def reranked(
        config: SearchConfig, queries: list[Query], qrels: Qrels, weight: float | None
    ) -> dict[str, Any]:
        if weight is None:
            return evaluate(Searcher(index, config).search(queries, 100), qrels, METRICS).metrics
        searcher = Searcher(index, replace(config, rerank_weight=weight), reranker=reranker)
        return evaluate(searcher.search(queries, 100), qrels, METRICS).metrics

    # the dev figure through the searcher itself (the grid fused run files): they must agree
    first["dev ndcg@10 (searcher)"] = reranked(first_config, dev_queries, dev_qrels, None)["ndcg@10"]
    rerank_dev = {
        (depth, w): reranked(replace(first_config, rerank_depth=depth), dev_queries, dev_qrels, w)["ndcg@10"]
        for depth in RERANK_DEPTHS
        for w in RERANK_WEIGHTS
    }
    depth, weight = max(rerank_dev, key=lambda dw: (round(rerank_dev[dw], 6), -dw[0], -dw[1]))
    chosen = replace(first_config, rerank_depth=depth, rerank_weight=weight)
    use_reranker = weight > 0
    pipeline = Pipeline(
        chosen,
        paths["reranker"] if use_reranker else None,
        None,  # queries on the index's own backends, as on dev
        {
            "chosen_on": f"{len(dev_queries)} dev questions of SciFact train (held out of every trainer)",
            "dev ndcg@10": rerank_dev[(depth, weight)],
            "written_by": command,
        },
    )
    write_pipeline(pipeline, PIPELINE)
    print("pipeline written:", PIPELINE.read_text(), flush=True)

    # test: every stage, then the pipeline read back from its file
    rows: list[dict[str, Any]] = []
    for c in candidates:
        config = SearchConfig(mode=c["mode"], fusion=c["fusion"])
        rows.append(
            {
                "stage": c["mode"] + (" (auto fusion)" if c.get("label-free") else ""),
                "fusion": _describe(c["fusion"]),
                "dev ndcg@10": c["dev ndcg@10"],
                **{f"test {m}": v for m, v in reranked(config, test_queries, test_qrels, None).items()},
            }
        )
    saved = read_pipeline(PIPELINE)
    index = Index.open(index.path, backend=saved.backend)  # type: ignore[arg-type]
    searcher = Searcher(
        index, saved.search, reranker=load_reranker(saved.reranker) if saved.reranker else None
    )
    test = evaluate(searcher.search(test_queries, 100), test_qrels, METRICS).metrics
    alone = reranked(replace(first_config, rerank_depth=100), test_queries, test_qrels, 1.0)
    rows.append(
        {
            "stage": f"{first['mode']} + reranker alone (w=1, depth 100)",
            "fusion": _describe(first["fusion"]),
            "dev ndcg@10": rerank_dev[(100, 1.0)],
            **{f"test {m}": v for m, v in alone.items()},
        }
    )
    texts = [q.text for q in test_queries][: args.latency_queries]
    latency = latency_ms(lambda q: searcher.hits([q], 10), texts)
    rows.append(
        {
            "stage": f"**pipeline** ({PIPELINE.name})",
            "fusion": _describe(saved.search.fusion)
            + (f"; rerank depth {depth}, weight {weight}" if use_reranker else "; no reranker"),
            "dev ndcg@10": rerank_dev[(depth, weight)],
            **{f"test {m}": v for m, v in test.items()},
            "p50 ms": latency["p50_ms"],
        }
    )
    results = {
        "pipeline": json.loads(PIPELINE.read_text()),
        "first_stage_dev": {k: v for k, v in first.items() if k != "fusion"},
        "rows": rows,
        "rerank_dev": [{"depth": d, "weight": w, "dev ndcg@10": v} for (d, w), v in rerank_dev.items()],
        "latency": latency,
    }
    table = markdown_table(
        ["stage", "fusion", "dev nDCG@10", "test nDCG@10", "test Recall@100", "test MRR@10", "query p50 ms"],
        [
            [
                r["stage"],
                r["fusion"],
                r["dev ndcg@10"],
                r["test ndcg@10"],
                r["test recall@100"],
                r["test mrr@10"],
                r.get("p50 ms", ""),
            ]
            for r in rows
        ],
    )
    write_results("best_scifact", results, table, command)
    print(table)


def _describe(fusion: FusionConfig) -> str:
    if fusion.method != "weighted":
        return fusion.method
    weights = ", ".join(f"{n} {w:.1f}" for n, w in dict(fusion.weights or {}).items())
    return f"{fusion.normalization} ({weights})"


if __name__ == "__main__":
    np.seterr(all="ignore")
    start = time.perf_counter()
    main()
    print(f"{(time.perf_counter() - start) / 60:.1f} min")
