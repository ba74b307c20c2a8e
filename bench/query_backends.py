"""Query encoding backends on an index built with fp32 torch: quality and CPU per query.

The server and ``densa search`` encode queries on ``--backend auto``: the fastest backend whose
nDCG@10 stays within 0.005 of fp32 torch queries against the same fp32 passages. This measures
each candidate on every collection in ``--data`` (the bench indexes of ``common.cached_index``):
dense and hybrid nDCG@10 on the test split, and the encoder's CPU milliseconds per query
(queries in batches of 8, as a loaded server batches them). ``openvino-int8`` uses the model's
int8 graph as it is cached (calibrated once per model, on whichever corpus first asked for it:
its record says which texts), so on the other collections it is measured as a user would get it.

Run::

    .venv/bin/python bench/query_backends.py --data ../shared/data

Writes ``bench/results/query_backends.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import DEFAULT_DATA, cached_index, markdown_table, ndcg_on_test, write_results
from densa.corpus import BeirDataset
from densa.index import Index

BACKENDS = ["torch", "openvino", "openvino-int8"]
DATASETS = ["scifact", "cranfield", "msmarco-dl19-subset"]


def cpu_ms_per_query(encoder: object, texts: list[str], batch: int = 8) -> float:
    encode = encoder.encode_queries  # type: ignore[attr-defined]
    encode(texts[:batch])  # warm-up
    start = time.process_time()
    for i in range(0, len(texts), batch):
        encode(texts[i : i + batch])
    return (time.process_time() - start) / len(texts) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    args = parser.parse_args()
    rows, records = [], []
    for name in args.datasets:
        dataset = BeirDataset(args.data / name)
        path = cached_index(dataset.root).path
        texts = [q.text for q in dataset.queries("test")]
        reference: dict[str, float] = {}
        for backend in BACKENDS:
            # the index's own backend is fp32 torch: backend=None keeps it
            index = Index.open(path, backend=None if backend == "torch" else backend)  # type: ignore[arg-type]
            record = {
                "dataset": name,
                "backend": backend,
                "dense_ndcg@10": ndcg_on_test(index, dataset, "dense"),
                "hybrid_ndcg@10": ndcg_on_test(index, dataset, "hybrid"),
                "cpu_ms_per_query": cpu_ms_per_query(index.query_encoder, texts),
            }
            index.close()
            reference = reference or record
            record["dense_vs_fp32"] = record["dense_ndcg@10"] - reference["dense_ndcg@10"]
            record["hybrid_vs_fp32"] = record["hybrid_ndcg@10"] - reference["hybrid_ndcg@10"]
            records.append(record)
            rows.append([record[k] for k in record])
            print(rows[-1], flush=True)
    headers = [
        "dataset",
        "query backend",
        "dense nDCG@10",
        "hybrid nDCG@10",
        "encoder CPU ms / query (batches of 8)",
        "dense vs fp32",
        "hybrid vs fp32",
    ]
    table = markdown_table(headers, rows)
    write_results(
        "query_backends",
        {"datasets": args.datasets, "results": records},
        table,
        "python bench/query_backends.py --data ../shared/data",
    )
    print(table)


if __name__ == "__main__":
    main()
