"""Static embeddings: distil from the bundled MiniLM, encoding speed, quality, and fusion with them.

1. ``densa.encode.static.distill`` makes a static model from MiniLM (offline, timed).
2. Encoding speed, passages/s on 2 CPU cores: the static model and MiniLM (fp32 torch) on the
   same 1,000 SciFact passages.
3. nDCG@10 of a ``static`` channel on each dataset (test split), beside dense and BM25.
4. Label-free fusion with a much weaker channel in the mix (issue 14's rule on channel sets
   it was not designed on): static+bm25, static+dense, dense+bm25+static with the default
   (measured) fusion against the better channel.

Run::

    .venv/bin/python bench/static.py --data ../shared/data

Copies the indexes of ``bench/work/`` (built if missing) to ``bench/work/<name>-static`` and adds
the static channel there. Writes ``bench/results/static.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, WORK, cached_index, markdown_table, ndcg_on_test, with_channel, write_results
from densa.corpus import BeirDataset
from densa.encode import EncoderConfig, make_encoder
from densa.encode.static import distill
from densa.index import DenseChannel, Index, VectorIndexConfig
from densa.search import SearchConfig, Searcher
from densa.search.calibrate import calibrate, describe

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")
COMBOS = ("static+bm25", "static+dense", "dense+bm25+static")


def _speed(encoder: Any, texts: list[str]) -> float:
    encoder.encode_documents(texts[:32])
    start = time.perf_counter()
    encoder.encode_documents(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    model = WORK / "static-minilm"
    shutil.rmtree(model, ignore_errors=True)
    start = time.perf_counter()
    distill(model)
    distill_s = time.perf_counter() - start
    static_config = EncoderConfig(model=str(model))

    scifact = (
        Index.open(WORK / "scifact") if (WORK / "scifact").exists() else cached_index(args.data / "scifact")
    )
    texts = [doc.full_text for _, doc in scifact.snapshot.iter_documents()][:1000]
    speed = {
        "static": _speed(make_encoder(static_config), texts),
        "MiniLM fp32": _speed(make_encoder(), texts),
    }
    print("passages/s", speed, flush=True)

    quality, fusion = [], []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        index, _ = with_channel(
            dataset.root, "static", "static", DenseChannel(static_config, VectorIndexConfig())
        )
        note = describe(calibrate(index), list(index.channels))
        print(name, note, flush=True)
        alone = {c: ndcg_on_test(index, dataset, c) for c in ("dense", "bm25", "static")}
        quality.append({"dataset": name, **alone})
        for combo in COMBOS:
            names = combo.split("+")
            values = [alone[c] for c in names]
            best = max(values)
            close = len(names) == 2 and best - min(values) <= 0.05
            need = best + 0.02 if close else best - 0.005
            fused = ndcg_on_test(index, dataset, combo)
            weights = Searcher(index, SearchConfig(mode=combo)).fusion()
            fusion.append(
                {
                    "dataset": name,
                    "channels": combo,
                    "best channel": best,
                    "needed": need,
                    "auto": fused,
                    "met": fused >= need,
                    "weights": dict(weights.weights or {}),
                    "normalization": weights.normalization,
                }
            )
    table = f"Distilling MiniLM into a 256-d static model: {distill_s:.1f}s.\n\n"
    table += "Encoding, passages/s (1,000 SciFact passages, 2 cores):\n\n"
    table += markdown_table(["encoder", "passages/s"], [[k, v] for k, v in speed.items()])
    table += f"\n\nstatic / MiniLM: {speed['static'] / speed['MiniLM fp32']:.0f}x\n\nnDCG@10 (test):\n\n"
    table += markdown_table(
        ["dataset", "dense", "bm25", "static"],
        [[q["dataset"], q["dense"], q["bm25"], q["static"]] for q in quality],
    )
    table += "\n\nDefault (measured) fusion with the static channel in the mix:\n\n"
    table += markdown_table(
        ["dataset", "channels", "best channel", "needed", "auto", "met", "measured weights"],
        [
            [
                f["dataset"],
                f["channels"],
                f["best channel"],
                f["needed"],
                f["auto"],
                "yes" if f["met"] else "NO",
                ", ".join(f"{k}={v:g}" for k, v in f["weights"].items()) + f" ({f['normalization']})",
            ]
            for f in fusion
        ],
    )
    command = "python bench/static.py " + " ".join(sys.argv[1:])
    payload = {
        "distill_seconds": distill_s,
        "passages_per_second": speed,
        "quality": quality,
        "fusion": fusion,
    }
    write_results("static", payload, table, command)
    print(table)


if __name__ == "__main__":
    main()
