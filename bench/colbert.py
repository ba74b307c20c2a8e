"""ColBERT (late interaction) as a channel: train from MiniLM, index, search, fuse.

1. Mine BM25 hard negatives for SciFact *train* questions (shared with ``train_scifact.py``) and
   train a ColBERT model from the bundled MiniLM (``densa.train.colbert``: MaxSim contrastive
   loss, in-batch + 1 hard negative, new 128-d projection); the test qrels are never used.
2. For each collection: copy the ``bench/work`` index (dense + BM25), add a ``colbert`` channel
   (2-bit residual codes, PLAID-style candidates), and report nDCG@10 of every channel alone and
   of the default (label-free) fusion of each channel set, bytes per passage beside the dense
   flat vectors, and query latency. Cranfield and MS MARCO are zero-shot transfer of the
   SciFact-trained model.
3. On SciFact: the untrained model (MiniLM token vectors through an orthogonal projection, no
   ColBERT training) and the candidate-generation loss (PLAID against scoring every passage's
   compressed tokens: recall@10 of the exhaustive top-10, and its nDCG@10).

Run::

    .venv/bin/python bench/colbert.py --data ../shared/data

Writes ``bench/results/colbert.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common import DEFAULT_DATA, WORK, latency_ms, markdown_table, ndcg_on_test, with_channel, write_results
from densa.corpus import BeirDataset
from densa.encode.colbert import new_colbert_model
from densa.index.channels.colbert import ColbertChannel
from densa.search import SearchConfig, Searcher
from densa.search.calibrate import calibrate, describe
from densa.train import MiningConfig, mine_dataset, read_dpr, write_dpr
from densa.train.colbert import ColbertTrainConfig, train_colbert

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")
MODES = ("dense", "bm25", "colbert", "dense+bm25", "colbert+bm25", "dense+colbert", "dense+bm25+colbert")
TRAIN = ColbertTrainConfig(epochs=2, batch_size=32, hard_negatives=1, eval_steps=26, save_steps=26)


def candidate_loss(index: Any, dataset: BeirDataset, queries: int = 50) -> dict[str, float]:
    """PLAID's top 10 against scoring every passage's compressed tokens (both exact MaxSim on the
    same codes), on the first ``queries`` test queries (scoring all 5k passages is slow)."""
    texts = [q.text for q in dataset.queries("test")][:queries]
    channel = index.channel("colbert")
    encoded = channel.encode_queries(texts)
    allowed = [None] * len(channel.parts)
    plaid = channel.search(encoded, 10, allowed)
    kind = channel.kind
    kept = kind.candidates
    kind.candidates = 10**9
    try:
        full = channel.search(encoded, 10, allowed)
    finally:
        kind.candidates = kept
    overlap = []
    for found, wanted in zip(plaid, full, strict=True):
        overlap.append(len(set(found.ids[:10]) & set(wanted.ids[:10])) / max(min(10, len(wanted)), 1))
    return {"queries": len(texts), "recall@10 vs exhaustive": float(np.mean(overlap))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--epochs", type=float, default=TRAIN.epochs)
    args = parser.parse_args()
    command = "python bench/colbert.py " + " ".join(sys.argv[1:])
    scifact = BeirDataset(args.data / "scifact")
    results: dict[str, Any] = {}

    data = WORK / "scifact-train-negatives.jsonl"
    if not data.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        write_dpr(mine_dataset(scifact, "train", MiningConfig(miner="bm25", depth=30, per_query=4)), data)
    model = WORK / "colbert-minilm-scifact"
    config = replace(TRAIN, epochs=args.epochs)
    if not (model / "modules.json").exists():
        trained = train_colbert(read_dpr(data), model, config)
        results["training"] = {
            "minutes": trained.seconds / 60,
            "steps": trained.steps,
            "dev_ndcg@10": trained.dev_ndcg,
            "epochs": config.epochs,
        }
    else:
        record = json.loads((model / "densa_training.json").read_text())
        results["training"] = {
            "minutes": record["seconds_this_run"] / 60,
            "steps": record["steps"],
            "dev_ndcg@10": record["dev_ndcg@10"],
            "epochs": config.epochs,
        }
    print("training", results["training"], flush=True)

    untrained = WORK / "colbert-minilm-untrained"
    if not (untrained / "modules.json").exists():
        new_colbert_model("bundled:all-MiniLM-L6-v2", device="cpu").save_pretrained(str(untrained))

    rows: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        index, add_seconds = with_channel(dataset.root, "colbert", "colbert", ColbertChannel(str(model)))
        print(name, describe(calibrate(index), list(index.channels)), flush=True)
        scores = {mode: ndcg_on_test(index, dataset, mode) for mode in MODES}
        passages = index.manifest.passages
        queries = [q.text for q in dataset.queries("test")][:100]
        colbert_search = Searcher(index, SearchConfig(mode="colbert"))
        dense_search = Searcher(index, SearchConfig(mode="dense"))
        row = {
            "dataset": name,
            **scores,
            "colbert bytes/passage": index.manifest.channel_stat("colbert", "bytes") / passages,
            "dense bytes/passage": index.manifest.channel_stat("dense", "bytes") / passages,
            "colbert passages/s": passages / add_seconds if add_seconds is not None else None,
            "colbert p50 ms": latency_ms(lambda q, s=colbert_search: s.hits([q], 10), queries)["p50_ms"],
            "dense p50 ms": latency_ms(lambda q, s=dense_search: s.hits([q], 10), queries)["p50_ms"],
        }
        rows.append(row)
        print(row, flush=True)
        if name == "scifact":
            extra.append({"run": "SciFact, trained, PLAID", **candidate_loss(index, dataset)})
            plain, _ = with_channel(
                dataset.root, "colbert-untrained", "colbert", ColbertChannel(str(untrained))
            )
            extra.append(
                {
                    "run": "SciFact, untrained projection",
                    "colbert ndcg@10": ndcg_on_test(plain, dataset, "colbert"),
                }
            )
        results["rows"] = rows
        results["extra"] = extra
        _write(results, rows, extra, command)  # after every collection: a long run leaves what it measured


def _write(
    results: dict[str, Any], rows: list[dict[str, Any]], extra: list[dict[str, Any]], command: str
) -> None:
    table = (
        f"ColBERT trained from MiniLM on SciFact train ({results['training']}).\n\n"
        "nDCG@10 (test); fusions are densa's default (label-free, measured on the corpus):\n\n"
    )
    table += markdown_table(["dataset", *MODES], [[r["dataset"], *(r[m] for m in MODES)] for r in rows])
    table += "\n\nSize and speed (2 cores; p50 over 100 test queries, one at a time, k=10):\n\n"
    cost = (
        "colbert bytes/passage",
        "dense bytes/passage",
        "colbert passages/s",
        "colbert p50 ms",
        "dense p50 ms",
    )
    table += markdown_table(["dataset", *cost], [[r["dataset"], *(r[c] for c in cost)] for r in rows])
    table += "\n\nOn SciFact:\n\n"
    table += "\n".join(f"- {json.dumps(e)}" for e in extra)
    write_results("colbert", results, table, command)
    print(table)


if __name__ == "__main__":
    main()
