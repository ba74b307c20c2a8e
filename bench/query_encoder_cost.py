"""What one query-encoder call costs on this CPU: the bundled model's exported graph on OpenVINO,
by batch size and token count, with dynamic shapes (as densa runs it) and compiled for one
static shape, in its default precision (bf16 where the CPU has it) and as the int8 graph.

The question it answers: why the server's CPU per search stays near 10 ms, and which encoder
levers are worth taking. Each cell is CPU milliseconds per query (process CPU time over
``--calls`` calls on one stream and one thread, so that the cost is not hidden in idle cores),
on random token ids of the given shape.

Run::

    .venv/bin/python bench/query_encoder_cost.py [--calls 100]

Writes ``bench/results/query_encoder_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from common import markdown_table, write_results
from densa.encode.config import DEFAULT_MODEL
from densa.encode.model_files import fingerprint, resolve_model_path
from densa.encode.onnx import cached_graph

SHAPES = [(1, 8), (1, 20), (1, 64), (5, 24), (8, 20), (16, 32), (32, 32)]


def cpu_ms_per_query(request: Any, feeds: dict[str, np.ndarray], calls: int) -> float:
    for _ in range(10):  # kernels built, caches warm
        request.infer(feeds)
    start = time.process_time()
    for _ in range(calls):
        request.infer(feeds)
    batch = len(next(iter(feeds.values())))
    return (time.process_time() - start) / calls / batch * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    import openvino as ov

    model_dir = resolve_model_path(DEFAULT_MODEL)
    graphs = {
        runtime: cached_graph(model_dir, fingerprint(model_dir), runtime)
        for runtime in ("openvino", "openvino-int8")
    }
    core = ov.Core()
    config = {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 1}
    rng = np.random.default_rng(0)
    rows, records = [], []
    for runtime, graph in graphs.items():
        if graph is None:
            print(f"{runtime}: not exported yet (run densa search --backend {runtime} once); skipped")
            continue
        names = [i.any_name for i in core.read_model(str(graph)).inputs]
        dynamic = core.compile_model(str(graph), "CPU", config)
        precision = dynamic.get_property("INFERENCE_PRECISION_HINT").to_string()  # bf16, f32
        dynamic_request = dynamic.create_infer_request()
        for batch, tokens in SHAPES:
            feeds = {
                "input_ids": rng.integers(1000, 20000, (batch, tokens)),
                "attention_mask": np.ones((batch, tokens), np.int64),
                "token_type_ids": np.zeros((batch, tokens), np.int64),
            }
            feeds = {k: v for k, v in feeds.items() if k in names}
            model = core.read_model(str(graph))
            model.reshape({name: [batch, tokens] for name in names})
            static_request = core.compile_model(model, "CPU", config).create_infer_request()
            cells = {
                "dynamic": cpu_ms_per_query(dynamic_request, feeds, args.calls),
                "static": cpu_ms_per_query(static_request, feeds, args.calls),
            }
            shape = {"batch": batch, "tokens": tokens}
            records.append({"graph": runtime, "precision": precision, **shape, **cells})
            rows.append([runtime, precision, batch, tokens, cells["dynamic"], cells["static"]])
            print(rows[-1], flush=True)
    table = markdown_table(
        ["graph", "precision", "batch", "tokens a query", "dynamic: CPU ms/query", "static: CPU ms/query"],
        rows,
    )
    write_results(
        "query_encoder_cost",
        {"calls": args.calls, "results": records},
        table,
        "python bench/query_encoder_cost.py" + (f" --calls {args.calls}" if args.calls != 100 else ""),
    )
    print(table)


if __name__ == "__main__":
    main()
