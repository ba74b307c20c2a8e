"""SPLADE (learned sparse) as a channel: from MiniLM with no MLM head, untrained and trained.

1. ``splade0``: the bundled MiniLM with an MLM head initialised from its tied input embeddings
   (``densa.encode.splade.new_splade_model``; bias set on 1,000 SciFact *train* passages to keep
   ~128 terms a passage; 128 tokens like the trained one). No training: a lexical-plus-expansion
   baseline.
2. ``splade``: the same start trained on SciFact train with BM25 hard negatives
   (``densa.train.sparse``: contrastive + FLOPS on documents and queries, 1 epoch, 128 tokens);
   the test qrels are never used. Cranfield and MS MARCO are zero-shot transfer.
3. For each collection: nDCG@10 of every channel and of the default (label-free) fusion of each
   channel set, terms and bytes per passage, encoding speed and query latency.

Run::

    .venv/bin/python bench/splade.py --data ../shared/data [--datasets scifact]

SPLADE encoding is slow on 2 cores (the MLM head scores 30,522 terms at every token): about an
hour per collection for the two models when the machine is shared, hence ``--datasets``.

Writes ``bench/results/splade.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, WORK, latency_ms, markdown_table, ndcg_on_test, with_channel, write_results
from densa.corpus import BeirDataset
from densa.encode.splade import new_splade_model
from densa.index.channels.splade import SpladeChannel
from densa.search import SearchConfig, Searcher
from densa.search.calibrate import calibrate, describe
from densa.train import MiningConfig, mine_dataset, read_dpr, write_dpr
from densa.train.sparse import SpladeTrainConfig, train_splade

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")
MODES = ("dense", "bm25", "splade0", "splade", "splade+bm25", "dense+splade", "dense+bm25+splade")
TRAIN = SpladeTrainConfig(epochs=1, max_length=128, batch_size=32, eval_steps=13, save_steps=13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    command = "python bench/splade.py " + " ".join(sys.argv[1:])
    scifact = BeirDataset(args.data / "scifact")
    results: dict[str, Any] = {}

    data = WORK / "scifact-train-negatives.jsonl"
    if not data.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        write_dpr(mine_dataset(scifact, "train", MiningConfig(miner="bm25", depth=30, per_query=4)), data)
    examples = read_dpr(data)
    untrained = WORK / "splade-minilm-init"
    if not (untrained / "modules.json").exists():
        texts = list(dict.fromkeys(p.full_text for e in examples for p in (*e.positives, *e.hard_negatives)))
        model, notes = new_splade_model(
            "bundled:all-MiniLM-L6-v2", texts=texts[:1000], max_length=TRAIN.max_length
        )
        model.save_pretrained(str(untrained))
        results["init"] = notes
    trained = WORK / "splade-minilm-scifact"
    if not (trained / "modules.json").exists():
        run, notes = train_splade(examples, trained, TRAIN)
        results["training"] = {"minutes": run.seconds / 60, "steps": run.steps, "dev_ndcg@10": run.dev_ndcg}
    else:
        record = json.loads((trained / "densa_training.json").read_text())
        results["training"] = {"steps": record["steps"], "dev_ndcg@10": record["dev_ndcg@10"]}
    print("training", results["training"], flush=True)

    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        seconds = {}
        for channel, model in (("splade0", untrained), ("splade", trained)):
            index, seconds[channel] = with_channel(dataset.root, "splade", channel, SpladeChannel(str(model)))
        print(name, describe(calibrate(index), list(index.channels)), flush=True)
        scores = {mode: ndcg_on_test(index, dataset, mode) for mode in MODES}
        passages = index.manifest.passages
        queries = [q.text for q in dataset.queries("test")][:100]
        splade_search = Searcher(index, SearchConfig(mode="splade"))
        row = {
            "dataset": name,
            **scores,
            "splade terms/passage": index.manifest.channel_stat("splade", "weights") / passages,
            "splade0 terms/passage": index.manifest.channel_stat("splade0", "weights") / passages,
            "splade bytes/passage": index.manifest.channel_stat("splade", "bytes") / passages,
            "splade passages/s": passages / seconds["splade"] if seconds["splade"] is not None else None,
            "splade p50 ms": latency_ms(lambda q, s=splade_search: s.hits([q], 10), queries)["p50_ms"],
        }
        rows.append(row)
        results["rows"] = rows
        print(row, flush=True)
        _write(results, rows, command)  # after every collection: a long run leaves what it measured


def _write(results: dict[str, Any], rows: list[dict[str, Any]], command: str) -> None:
    table = (
        f"SPLADE from MiniLM (no MLM head: set from the tied input embeddings). `splade0`: untrained; "
        f"`splade`: trained on SciFact train ({results['training']}).\n\n"
        "nDCG@10 (test); fusions are densa's default (label-free, measured on the corpus):\n\n"
    )
    table += markdown_table(["dataset", *MODES], [[r["dataset"], *(r[m] for m in MODES)] for r in rows])
    cost = (
        "splade0 terms/passage",
        "splade terms/passage",
        "splade bytes/passage",
        "splade passages/s",
        "splade p50 ms",
    )
    table += "\n\nSize and speed (2 cores; p50 over 100 test queries, one at a time, k=10):\n\n"
    table += markdown_table(["dataset", *cost], [[r["dataset"], *(r[c] for c in cost)] for r in rows])
    write_results("splade", results, table, command)
    print(table)


if __name__ == "__main__":
    main()
