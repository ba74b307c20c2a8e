"""Packed against padded query encoding on OpenVINO: quality and CPU per query.

``densa serve`` and ``densa search`` encode queries on OpenVINO by default (``--backend auto``
on an index built with fp32 torch). With the model's packed graph exported
(:func:`densa.encode.onnx.export_packed`), a batch's queries are laid end to end in rows
instead of padded to the longest one. This measures, on every collection in ``--data`` (the
bench indexes of ``common.cached_index``), dense and hybrid nDCG@10 on the test split with
each, and the encoder's CPU milliseconds per query on the test queries in random batches of
1, 6 (about what a loaded server batches), 16 and 32 (a batch search), each cell the better
of two passes (the order alternates, so that neither side gets the warm caches).

Run::

    .venv/bin/python bench/query_packing.py --data ../shared/data

Writes ``bench/results/query_packing.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from common import DEFAULT_DATA, cached_index, markdown_table, ndcg_on_test, write_results
from densa.corpus import BeirDataset
from densa.encode.onnx import OnnxEncoder
from densa.index import Index

DATASETS = ["scifact", "cranfield", "msmarco-dl19-subset"]
BATCHES = [1, 6, 16, 32]


def cpu_ms_per_query(encoder: OnnxEncoder, batches: list[list[str]]) -> float:
    for batch in batches[:10]:  # kernels built for the first shapes, caches warm
        encoder.encode_queries(batch)
    start = time.process_time()
    for batch in batches[10:]:
        encoder.encode_queries(batch)
    return (time.process_time() - start) / sum(len(b) for b in batches[10:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--calls", type=int, default=150, help="encoder calls per cell")
    args = parser.parse_args()
    records = []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        index = Index.open(cached_index(dataset.root).path, backend="openvino")
        packed = index.query_encoder
        if not isinstance(packed, OnnxEncoder) or packed.packed is None:
            raise SystemExit(f"{name}: the query encoder has no packed graph ({packed!r})")
        encoders = {"packed": packed, "padded": packed.padded()}
        texts = [q.text for q in dataset.queries("test")]
        rng = random.Random(0)
        for how, encoder in encoders.items():
            index.use_encoder(queries=encoder)
            record: dict[str, object] = {
                "dataset": name,
                "queries": how,
                "dense_ndcg@10": ndcg_on_test(index, dataset, "dense"),
                "hybrid_ndcg@10": ndcg_on_test(index, dataset, "hybrid"),
            }
            records.append(record)
        for size in BATCHES:
            batches = [rng.sample(texts, size) for _ in range(args.calls + 10)]
            best: dict[str, float] = {}
            for how in ["packed", "padded", "padded", "packed"]:
                cost = cpu_ms_per_query(encoders[how], batches)
                best[how] = min(best.get(how, cost), cost)
            for record in records[-2:]:
                record[f"cpu_ms_per_query@{size}"] = best[str(record["queries"])]
    headers = ["dataset", "queries", "dense nDCG@10", "hybrid nDCG@10"]
    headers += [f"CPU ms/query, batch {size}" for size in BATCHES]
    keys = ["dataset", "queries", "dense_ndcg@10", "hybrid_ndcg@10"]
    keys += [f"cpu_ms_per_query@{size}" for size in BATCHES]
    table = markdown_table(headers, [[r[k] for k in keys] for r in records])
    print(table)
    write_results(
        "query_packing",
        {"records": records},
        table,
        "python bench/query_packing.py --data ../shared/data",
    )


if __name__ == "__main__":
    main()
