"""Adapt MiniLM to SciFact (train split only) and measure what it buys.

Steps, each skipped when its output already exists (so an interrupted run resumes):

1. mine BM25 hard negatives for SciFact *train* queries (test qrels never used);
2. fine-tune the shared-weights bi-encoder (InfoNCE, in-batch + 1 hard negative);
3. evaluate zero-shot vs fine-tuned on SciFact test, Cranfield and the MS MARCO subset;
4. train a cross-encoder reranker (listwise loss) and rerank the zero-shot hybrid top-100:
   first on dev questions carved from train (choosing the cross-encoder / hybrid mix weight),
   then on SciFact test with that weight and with the cross-encoder alone;
5. train with a Matryoshka loss (384/256/128/64), same recipe as step 2, and evaluate at 384
   and 128 dimensions;
6. train a separate-towers bi-encoder (one epoch, to fit the machine's time) and evaluate it.

Run::

    .venv/bin/python bench/train_scifact.py --data ../shared/data [--steps shared,rerank,towers,matryoshka]

Writes ``bench/results/train_scifact.json`` and ``.md`` (rewritten after every step).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_DATA,
    RESULTS,
    WORK,
    cached_index,
    markdown_table,
    read_dataset_corpus,
    write_results,
)
from densa.corpus import BeirDataset
from densa.encode import EncoderConfig, SentenceTransformerEncoder
from densa.evaluate import evaluate, evaluate_dataset
from densa.fuse import FusionConfig
from densa.index import Index
from densa.rerank import CrossEncoderReranker
from densa.search import SearchConfig, Searcher
from densa.train import (
    MiningConfig,
    RerankerConfig,
    TrainConfig,
    mine_dataset,
    read_dpr,
    split_dev,
    train_bi_encoder,
    train_reranker,
    write_dpr,
)
from densa.types import Qrels, Query

METRICS = ["ndcg@10", "recall@100", "mrr@10"]
# max_length=128 keeps training inside the 45-minute budget; it is saved with the model, so the
# fine-tuned model also encodes (indexes and searches) 128 tokens, against the zero-shot model's 256.
SHARED = TrainConfig(
    epochs=3,
    batch_size=32,
    learning_rate=3e-5,
    hard_negatives=1,
    temperature=0.05,
    max_length=128,
    eval_steps=26,
    save_steps=26,
)
QUICK = replace(SHARED, epochs=1)  # separate towers: one epoch
RERANK = RerankerConfig(eval_steps=25, save_steps=25, logging_steps=10)  # listwise, 2 epochs, lr 5e-5
WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def evaluate_model(model: Path, dataset: BeirDataset, name: str, dim: int | None = None) -> dict[str, Any]:
    encoder = SentenceTransformerEncoder(EncoderConfig(model=str(model), dim=dim))
    index = Index.build(
        read_dataset_corpus(dataset.root), WORK / name, encoder=encoder, overwrite=True, progress=True
    )
    result, _ = evaluate_dataset(Searcher(index), dataset, "test", METRICS)
    return result.metrics


def timed_training(examples: list[Any], output: Path, config: TrainConfig) -> dict[str, Any]:
    start = time.perf_counter()
    result = train_bi_encoder(examples, output, config)
    return {
        "steps": result.steps,
        "minutes": (time.perf_counter() - start) / 60,
        "dev_ndcg@10": result.dev_ndcg,
    }


class CachedReranker:
    """Scores each (query, passage) pair once, so several rerank weights cost one reranking."""

    def __init__(self, reranker: CrossEncoderReranker) -> None:
        self.reranker = reranker
        self.cache: dict[tuple[str, str], float] = {}

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        todo = list(dict.fromkeys(p for p in pairs if p not in self.cache))
        self.cache.update(zip(todo, self.reranker.score(todo), strict=True))
        return [self.cache[p] for p in pairs]


def dev_split(scifact: BeirDataset, examples: list[Any]) -> tuple[list[Query], Qrels]:
    """The dev questions every trainer held out, with their train qrels."""
    _, dev = split_dev(examples, RERANK.dev_fraction, RERANK.seed)
    assert (RERANK.dev_fraction, RERANK.seed) == (SHARED.dev_fraction, SHARED.seed)
    questions = {e.question for e in dev}
    queries = [q for q in scifact.queries("train") if q.text in questions]
    judged = scifact.qrels("train").judgements
    return queries, Qrels({q.id: judged[q.id] for q in queries})


def rerank_step(
    scifact: BeirDataset,
    examples: list[Any],
    reranker_dir: Path,
    results: dict[str, Any],
    save: Callable[[], None],
) -> None:
    """Rerank the hybrid top-100. The weight that mixes cross-encoder and hybrid scores
    (``SearchConfig.rerank_weight``) is chosen on the reranker's dev questions, carved from
    SciFact *train* exactly as training carved them; test sees only the chosen weight and 1."""
    index = cached_index(scifact.root)
    reranker = CachedReranker(CrossEncoderReranker(reranker_dir, batch_size=64, show_progress=True))
    dev_queries, dev_qrels = dev_split(scifact, examples)

    def score(weight: float | None, queries: list[Query], qrels: Qrels) -> dict[str, Any]:
        # the equal-weight fusion these results were measured with (the default before issue 14)
        config = SearchConfig(
            mode="hybrid",
            fusion=FusionConfig(method="weighted", normalization="zscore"),
            rerank_depth=100,
            rerank_weight=weight or 1.0,
        )
        searcher = Searcher(index, config, reranker=None if weight is None else reranker)
        return evaluate(searcher.search(queries, 100), qrels, METRICS).metrics

    dev_scores = {w: score(w, dev_queries, dev_qrels) for w in (None, *WEIGHTS)}
    for w, metrics in dev_scores.items():
        results[f"dev hybrid + reranker w={w}" if w is not None else "dev hybrid"] = {
            **metrics,
            "note": f"{len(dev_queries)} dev questions from SciFact train",
        }
    best = max(WEIGHTS, key=lambda w: (dev_scores[w]["ndcg@10"], w))
    save()
    test = scifact.queries("test")
    results["scifact hybrid"] = score(None, test, scifact.qrels("test"))
    results["scifact hybrid + reranker"] = {**score(1.0, test, scifact.qrels("test")), "note": "w=1"}
    results[f"scifact hybrid + reranker w={best}"] = {
        **score(best, test, scifact.qrels("test")),
        "note": "weight chosen on dev",
    }
    save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", default="shared,rerank,matryoshka,towers")
    args = parser.parse_args()
    steps = args.steps.split(",")
    scifact = BeirDataset(args.data / "scifact")
    results_file = RESULTS / "train_scifact.json"
    results: dict[str, Any] = json.loads(results_file.read_text())["results"] if results_file.exists() else {}
    command = "python bench/train_scifact.py " + " ".join(sys.argv[1:])

    def save() -> None:
        rows = [
            [k, v.get("ndcg@10"), v.get("recall@100"), v.get("mrr@10"), v.get("note", "")]
            for k, v in results.items()
        ]
        table = markdown_table(["run", "nDCG@10", "Recall@100", "MRR@10", "note"], rows)
        write_results("train_scifact", {"results": results}, table, command)

    data = WORK / "scifact-train-negatives.jsonl"
    if not data.exists():
        start = time.perf_counter()
        examples = mine_dataset(scifact, "train", MiningConfig(miner="bm25", depth=30, per_query=4))
        write_dpr(examples, data)
        results["mining"] = {"note": f"{len(examples)} examples, bm25, {time.perf_counter() - start:.0f}s"}
        save()
    examples = read_dpr(data)

    if "shared" in steps:
        model = WORK / "minilm-scifact"
        if "shared train" not in results:
            results["shared train"] = {"note": json.dumps(timed_training(examples, model, SHARED))}
            save()
        for name in ("scifact", "cranfield", "msmarco-dl19-subset"):
            dataset = BeirDataset(args.data / name)
            if f"{name} zero-shot" not in results:
                zero, _ = evaluate_dataset(Searcher(cached_index(dataset.root)), dataset, "test", METRICS)
                results[f"{name} zero-shot"] = zero.metrics
            if f"{name} fine-tuned" not in results:
                results[f"{name} fine-tuned"] = evaluate_model(model, dataset, f"{name}-finetuned")
            save()

    if "rerank" in steps and "scifact hybrid + reranker" not in results:
        reranker_dir = WORK / "reranker-scifact"
        if not (reranker_dir / "config.json").exists():
            train_reranker(examples, reranker_dir, RERANK)
        record = json.loads((reranker_dir / "densa_training.json").read_text())
        results["reranker train"] = {
            "note": f"{record['seconds_this_run'] / 60:.1f} min, {record['steps']} steps, "
            f"{record['config']['loss']} loss, dev nDCG@10 (positive among its hard negatives) "
            f"{record['dev_ndcg@10']:.4f}"
        }
        save()
        rerank_step(scifact, examples, reranker_dir, results, save)

    if "matryoshka" in steps and "scifact matryoshka 128" not in results:
        model = WORK / "minilm-scifact-matryoshka"
        note = timed_training(examples, model, replace(SHARED, matryoshka_dims=(384, 256, 128, 64)))
        results["scifact matryoshka 384"] = {
            **evaluate_model(model, scifact, "scifact-mat384"),
            "note": json.dumps(note),
        }
        results["scifact matryoshka 128"] = evaluate_model(model, scifact, "scifact-mat128", dim=128)
        save()
    if "towers" in steps and "scifact separate towers" not in results:
        model = WORK / "minilm-scifact-towers"
        note = timed_training(examples, model, replace(QUICK, separate_towers=True))
        results["scifact separate towers"] = {
            **evaluate_model(model, scifact, "scifact-towers"),
            "note": json.dumps(note),
        }
        save()

    print((RESULTS / "train_scifact.md").read_text())


if __name__ == "__main__":
    main()
