"""1M-passage end-to-end latency, densa before segments against now: same vectors, queries and
FAISS kind, on one machine, in one run.

``bench/scale_1m.py`` measures every kind on this version; a machine lent on another day
can be much slower or faster (compare its ``search p50`` of FAISS alone), so its numbers are not
comparable with an earlier results file. This bench puts both versions side by side instead.
*Now* is the ``dense-<kind>`` channel of the index ``scale_1m.py`` leaves in
``bench/work/scale-1000000`` (built here, the same way, when it is missing); *before* is densa
at commit ``cacdacf`` (a git worktree under ``bench/work/densa-v1``, run in a subprocess), which
builds its own index of the same 1M documents and vectors with the same kind. Each times
``Searcher.hits`` one query at a time (encode the query, search, fetch the 10 documents),
queries encoded by fp32 torch and by OpenVINO, on the query sample of ``scale_1m.py``.

Run::

    .venv/bin/python bench/scale_1m_before.py --data ../shared/data

Writes ``bench/results/scale_1m_before.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from common import (
    DEFAULT_DATA,
    WORK,
    PrecomputedEncoder,
    add_kind_channel,
    latency_ms,
    markdown_table,
    write_results,
)
from densa.corpus import BeirDataset
from densa.index import Index
from densa.search import SearchConfig, Searcher
from scale_1m import DATASETS, KINDS, TEXT_CHARS, documents, grow, real_base, row_of
from updates import old_version

_BEFORE = """
import json, sys, time
from pathlib import Path
import numpy as np
import densa
assert "densa-v1" in densa.__file__, densa.__file__
from densa.encode import EncoderConfig, SentenceTransformerEncoder, make_encoder
from densa.index import Index, VectorIndexConfig
from densa.search import SearchConfig, Searcher
from densa.types import Document

folder, vectors_path = sys.argv[1], sys.argv[2]
config, queries = json.loads(sys.argv[3]), json.loads(sys.argv[4])
vectors = np.load(vectors_path, mmap_mode="r")
texts = json.loads(Path(vectors_path).with_suffix(".json").read_text())
real = SentenceTransformerEncoder()

class Feeder:
    spec, tokenizer = real.spec, real.tokenizer
    def encode_queries(self, t): return real.encode_queries(t)
    def encode_documents(self, t): return np.ascontiguousarray(vectors[[int(x[1:x.index("]")]) for x in t]])
    def count_truncated(self, t): return 0

docs = (Document(f"p{i}", f"[{i}] {texts[i % len(texts)]}") for i in range(len(vectors)))
if not (Path(folder) / "manifest.json").exists():
    vi = VectorIndexConfig(**config)
    Index.build(docs, folder, encoder=Feeder(), vectors=vi, resume=False, batch_size=8192)

def timed(index):
    searcher = Searcher(index, SearchConfig(mode="dense"))
    for q in queries[:5]:
        searcher.hits([q], 10)
    times = []
    for q in queries:
        start = time.perf_counter()
        searcher.hits([q], 10)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}

torch_run = timed(Index.open(folder, encoder=real))
openvino_run = timed(Index.open(folder, encoder=make_encoder(EncoderConfig(backend="openvino"))))
print(json.dumps({"torch": torch_run, "openvino": openvino_run}))
"""


def now_index(kinds: list[str], vectors: np.ndarray, base_texts: list[str], real: Any) -> None:
    """The index of "now", as ``scale_1m.py`` leaves it, with the channels asked for (built here
    when it is missing: 1M documents, flat ``dense``, ``bm25``, one ``dense-<kind>`` per kind)."""
    folder = WORK / f"scale-{len(vectors)}"
    if not (folder / "manifest.json").is_file():
        feeder = PrecomputedEncoder(real, vectors, row_of)
        docs = documents(base_texts, len(vectors))
        Index.build(docs, folder, encoder=feeder, resume=False, batch_size=8192)
    index = Index.open(folder)
    for kind in kinds:
        if kind != "flat" and f"dense-{kind}" not in index.channels:
            feeder = PrecomputedEncoder(real, vectors, row_of, count_truncated=False)
            index = add_kind_channel(index, f"dense-{kind}", feeder, KINDS[kind])
    index.close()


def now(kind: str, texts: list[str], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, backend in (("torch", None), ("openvino", "openvino")):
        with Index.open(WORK / f"scale-{n}", backend=backend) as index:
            searcher = Searcher(index, SearchConfig(mode="dense" if kind == "flat" else f"dense-{kind}"))
            searcher.hits(texts[:5], 10)
            out[label] = latency_ms(lambda q, s=searcher: s.hits([q], 10), texts)
    return out


def before(kind: str, texts: list[str], vectors: np.ndarray, base_texts: list[str]) -> dict[str, Any]:
    tree = old_version()
    shared = WORK / "before-vectors.npy"
    if not shared.is_file() or np.load(shared, mmap_mode="r").shape != vectors.shape:
        np.save(shared, vectors)
    shared.with_suffix(".json").write_text(json.dumps(base_texts))
    config = {k: v for k, v in KINDS[kind].to_dict().items() if k != "exact_below"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _BEFORE,
            str(WORK / f"scale-before-{kind}"),
            str(shared),
            json.dumps(config),
            json.dumps(texts),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree / "src"), "HF_HUB_OFFLINE": "1"},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="ivf-flat")
    parser.add_argument("--latency-queries", type=int, default=500)
    args = parser.parse_args()
    base, base_texts, real = real_base(args.data, list(DATASETS))
    vectors = grow(base, args.n)
    now_index(args.kinds.split(","), vectors, base_texts, real)
    queries = [q.text for name in DATASETS for q in BeirDataset(args.data / name).queries("test")]
    queries += [q.text for q in BeirDataset(args.data / "scifact").queries("train")]
    sample = list(range(0, len(queries), max(1, len(queries) // args.latency_queries)))[
        : args.latency_queries
    ]
    texts = [queries[i] for i in sample]
    assert max(len(t) for t in base_texts) <= TEXT_CHARS
    rows = []
    for kind in args.kinds.split(","):
        row = {
            "kind": kind,
            "now": now(kind, texts, args.n),
            "before": before(kind, texts, vectors, base_texts),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = markdown_table(
        [
            "kind",
            "queries encoded by",
            "before: e2e p50 ms",
            "now: e2e p50 ms",
            "before: p99 ms",
            "now: p99 ms",
        ],
        [
            [
                r["kind"],
                label,
                r["before"][label]["p50_ms"],
                r["now"][label]["p50_ms"],
                r["before"][label]["p99_ms"],
                r["now"][label]["p99_ms"],
            ]
            for r in rows
            for label in ("torch", "openvino")
        ],
    )
    command = "python bench/scale_1m_before.py " + " ".join(sys.argv[1:])
    write_results("scale_1m_before", {"n": args.n, "rows": rows}, table, command)
    print(table)


if __name__ == "__main__":
    main()
