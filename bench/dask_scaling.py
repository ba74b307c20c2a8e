"""Dask encoding straight into an engine channel: passages/s with 1 and 2 local workers.

Builds an index of the first ``--docs`` SciFact documents (real text, MiniLM fp32, 256-token
limit) whose dense channel lives in milvus-lite (``VectorIndexConfig(engine="milvus")``),
three ways on the same machine: in this process (torch on both cores), and on a Dask
``LocalCluster`` of 1 and of 2 single-threaded worker processes (``densa index --dask
local:N``). Reports wall time, passages/s, passages/s per worker, and the largest difference
between each build's vectors and the in-process build's (read back from the engine).

Run::

    .venv/bin/python bench/dask_scaling.py --data ../shared/data [--docs 1000]

Writes ``bench/results/dask_scaling.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from common import DEFAULT_DATA, markdown_table, read_dataset_corpus, write_results
from densa.index import Index, VectorIndexConfig
from densa.index.engines import close_all


def vectors_of(index: Index) -> np.ndarray:
    return np.concatenate([p.reconstruct(np.arange(len(p))) for p in index.channel("dense").parts])  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()
    docs = list(islice(read_dataset_corpus(args.data / "scifact"), args.docs))
    rows: list[dict[str, Any]] = []
    reference: np.ndarray | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for label, dask, workers in (
            ("in process", None, 0),
            ("dask local:1", "local:1", 1),
            ("dask local:2", "local:2", 2),
        ):
            start = time.perf_counter()
            index = Index.build(
                docs,
                Path(tmp) / label.replace(" ", "-").replace(":", ""),
                vectors=VectorIndexConfig(engine="milvus"),
                dask=dask,
                resume=False,
            )
            seconds = time.perf_counter() - start
            found = vectors_of(index)
            reference = found if reference is None else reference
            rows.append(
                {
                    "run": label,
                    "workers": workers,
                    "passages": index.manifest.passages,
                    "seconds": seconds,
                    "passages_per_s": index.manifest.passages / seconds,
                    "per_worker": index.manifest.passages / seconds / workers if workers else None,
                    "max_abs_diff": float(np.max(np.abs(found - reference))),
                }
            )
            print(rows[-1], flush=True)
            index.close()
            close_all()
    table = markdown_table(
        [
            "run",
            "workers",
            "passages",
            "wall s",
            "passages/s",
            "passages/s per worker",
            "max |v - in-process v|",
        ],
        [
            [
                r["run"],
                r["workers"] or "",
                r["passages"],
                round(r["seconds"], 1),
                r["passages_per_s"],
                "" if r["per_worker"] is None else r["per_worker"],
                f"{r['max_abs_diff']:.1e}",
            ]
            for r in rows
        ],
    )
    command = "python bench/dask_scaling.py " + " ".join(sys.argv[1:])
    write_results(
        "dask_scaling", {"docs": args.docs, "engine": "milvus (milvus-lite)", "runs": rows}, table, command
    )
    print(table)


if __name__ == "__main__":
    main()
