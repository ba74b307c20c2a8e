"""SciFact nDCG@10 per index kind and quantisation, with the memory of each kind's codes.

The SciFact index of the bundled MiniLM (flat, built once under ``bench/work/scifact``) is
copied, and each vector index kind is added to the copy as a dense channel built from the same
vectors (``Index.add_channel``, no re-encoding): the documents and queries stay the same, only
the vector search changes. ``binary, rescore=1`` is the
sign-bit Hamming search without float rescoring (the top k by Hamming distance, ordered
by their float scores).

Run::

    .venv/bin/python bench/index_kinds.py --data ../shared/data

Writes ``bench/results/index_kinds.{json,md}``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_DATA,
    RESULTS,
    WORK,
    PrecomputedEncoder,
    add_kind_channel,
    cached_index,
    dense_vectors,
    markdown_table,
    write_results,
)
from densa.corpus import BeirDataset
from densa.encode import SentenceTransformerEncoder
from densa.evaluate import evaluate_dataset
from densa.index import Index, VectorIndexConfig
from densa.search import SearchConfig, Searcher

METRICS = ["ndcg@10", "recall@100"]
KINDS = {
    "flat": VectorIndexConfig(kind="flat"),
    "hnsw": VectorIndexConfig(kind="hnsw"),
    "hnsw-sq8": VectorIndexConfig(kind="hnsw-sq8"),
    "ivf-flat": VectorIndexConfig(kind="ivf-flat"),
    "ivf-sq8": VectorIndexConfig(kind="ivf-sq8"),
    "ivf-pq": VectorIndexConfig(kind="ivf-pq"),
    "ivf-pq, rescore=1": VectorIndexConfig(kind="ivf-pq", rescore=1),
    "binary": VectorIndexConfig(kind="binary"),
    "binary, rescore=1": VectorIndexConfig(kind="binary", rescore=1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    command = "python bench/index_kinds.py " + " ".join(sys.argv[1:])
    scifact = BeirDataset(args.data / "scifact")
    cached = cached_index(scifact.root)
    vectors, texts = dense_vectors(cached)
    cached.close()
    copy = WORK / "scifact-kinds"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(WORK / "scifact", copy)
    feeder = PrecomputedEncoder(
        SentenceTransformerEncoder(), vectors, {t: i for i, t in enumerate(texts)}.__getitem__
    )
    index = Index.open(copy, encoder=feeder)
    float_bytes = vectors.size * 4
    rows: dict[str, Any] = {}
    for number, (name, config) in enumerate(KINDS.items()):
        channel = f"kind{number}"
        index = add_kind_channel(index, channel, feeder, config)
        (stats,) = (s.parts[channel] for s in index.manifest.segments)
        assert stats["kind"] == config.kind
        searcher = Searcher(index, SearchConfig(mode=channel))
        result, _ = evaluate_dataset(searcher, scifact, "test", METRICS)
        rows[name] = {
            **result.metrics,
            "params": {k: v for k, v in config.to_dict().items() if k != "kind"},
            "codes_bytes": stats["vector_codes"],
            "fraction_of_float": stats["vector_codes"] / float_bytes,
        }
        print(name, rows[name], flush=True)
    index.close()
    shutil.rmtree(copy)
    flat = rows["flat"]["ndcg@10"]
    for row in rows.values():
        row["ndcg_kept"] = row["ndcg@10"] / flat
    table = markdown_table(
        ["kind", "nDCG@10", "kept vs flat", "Recall@100", "codes memory vs float32"],
        [
            [name, r["ndcg@10"], r["ndcg_kept"], r["recall@100"], f"1/{1 / r['fraction_of_float']:.0f}"]
            for name, r in rows.items()
        ],
    )
    table += (
        "\n\nThe lossy kinds keep the float vectors on disk (memory-mapped) for rescoring, "
        "training and exact filtered search; 'codes memory' is what the search structure holds "
        "(HNSW graphs add about 2·M·4 bytes per vector on top)."
    )
    write_results("index_kinds", {"passages": len(vectors), "rows": rows}, table, command)
    print((RESULTS / "index_kinds.md").read_text())


if __name__ == "__main__":
    main()
