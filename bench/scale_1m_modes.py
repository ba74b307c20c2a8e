"""BM25 and the hybrid at 1M passages, end to end, on the index ``bench/scale_1m.py`` built.

Opens ``bench/work/scale-1000000`` (run ``bench/scale_1m.py`` or ``bench/scale_1m_before.py``
first: 1M documents, a flat ``dense`` channel, ``bm25``, and one more dense channel per FAISS
kind) and times one query at a time through ``Searcher.hits`` (encode + search + fetch the 10
documents), on the same query sample as ``scale_1m.py``: ``bm25`` alone, and ``dense+bm25``
fused through each dense channel asked for (``--dense``, default: the exact ``dense``, and
``dense-ivf-flat`` and ``dense-ivf-sq8`` where the index has them), with queries encoded by
OpenVINO (``--backend``).

Run::

    .venv/bin/python bench/scale_1m_modes.py --data ../shared/data

Writes ``bench/results/scale_1m_modes.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, WORK, latency_ms, markdown_table, write_results
from densa.corpus import BeirDataset
from densa.index import Index
from densa.search import SearchConfig, Searcher
from scale_1m import DATASETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument(
        "--dense", default="dense,dense-ivf-flat,dense-ivf-sq8", help="dense channels to fuse with bm25"
    )
    parser.add_argument("--backend", default="openvino", help="query backend of the dense channels")
    args = parser.parse_args()
    queries = [q.text for name in DATASETS for q in BeirDataset(args.data / name).queries("test")]
    queries += [q.text for q in BeirDataset(args.data / "scifact").queries("train")]
    sample = list(range(0, len(queries), max(1, len(queries) // args.latency_queries)))[
        : args.latency_queries
    ]
    texts = [queries[i] for i in sample]
    rows: list[dict[str, Any]] = []
    with Index.open(WORK / f"scale-{args.n}", backend=args.backend) as index:
        assert len(index) == args.n, f"expected the {args.n}-document index of bench/scale_1m.py"
        modes = ["bm25", *(f"{name}+bm25" for name in args.dense.split(",") if name in index.channels)]
        for mode in modes:
            searcher = Searcher(index, SearchConfig(mode=mode))
            searcher.hits(texts[:5], 10)  # load the channels' parts and models first
            timing = latency_ms(lambda q, s=searcher: s.hits([q], 10), texts)
            rows.append({"mode": mode, **timing})
            print(rows[-1], flush=True)
    table = markdown_table(
        ["mode", "e2e p50 ms", "e2e p99 ms", "mean ms", "queries"],
        [[r["mode"], r["p50_ms"], r["p99_ms"], r["mean_ms"], r["n"]] for r in rows],
    )
    command = "python bench/scale_1m_modes.py " + " ".join(sys.argv[1:])
    write_results(
        "scale_1m_modes", {"n": args.n, "query_backend": args.backend, "rows": rows}, table, command
    )
    print(table)


if __name__ == "__main__":
    main()
