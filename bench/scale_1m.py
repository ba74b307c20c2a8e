"""A 1M-passage index: build time, memory, disk, recall@10 vs exact and latency per index kind.

Vectors (documented mixing of real ones, since 1M real passages cannot be encoded here):

1. **Real base**: the 11,581 documents of SciFact, Cranfield and the MS MARCO subset,
   encoded with the bundled MiniLM (fp32, 256-token limit; the benches' cached indexes):
   ``n_base`` real vectors. (Encoding ~50k real passages would take most of an hour on
   this 2-core machine.)
2. **Growth to N**: passage ``i < n_base`` is real passage ``i``; passage ``i >= n_base`` is
   ``normalise((1 - a) x_b + a x_j + s g)`` with ``b = i mod n_base``, ``j`` uniform,
   ``a ~ U(0, 0.5)`` and ``g ~ N(0, I / d)`` (so ``|g| ~ 1``), ``s = 0.5``. Its text is
   passage ``b``'s (the first 400 characters of the document). Mixing keeps vectors near
   the real manifold; the isotropic noise makes ANN search harder than on real data.
3. **Queries**: the real queries of the three collections, encoded by the same model.

A 1M-document densa index (documents, a flat ``dense`` channel and ``bm25``) is built once.
Each other kind is added to it as a dense channel built from the same matrix
(``Index.add_channel`` fed by the precomputed vectors: its time includes reading the 1M stored
passages back; the flat kind is the index's own ``dense`` channel, its build time the FAISS
build alone). Per kind: RSS growth of a process serving it, bytes of its codes and on disk,
recall@10 against exact inner-product search, single-query latency of the vector search alone
and end to end through ``Searcher.hits`` with ``mode`` = that channel (encode the query +
search + fetch the 10 documents from SQLite), with the query encoded by torch fp32 and by
OpenVINO. BM25 and the dense + BM25 hybrid are timed end to end too. Then search-time
parameters are swept (efSearch, nprobe, rescore depth) for a recall-vs-latency plot.

Run::

    .venv/bin/python bench/scale_1m.py --data ../shared/data [--n 1000000]

Writes ``bench/results/scale_1m.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common import (
    DEFAULT_DATA,
    RESULTS,
    WORK,
    PrecomputedEncoder,
    add_kind_channel,
    cached_index,
    dense_vectors,
    latency_ms,
    markdown_table,
    write_results,
)
from densa.corpus import BeirDataset
from densa.encode import SentenceTransformerEncoder
from densa.index import Index, VectorIndex, VectorIndexConfig
from densa.index.writer import dir_bytes
from densa.search import SearchConfig, Searcher
from densa.types import Document

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")
KINDS = {
    "flat": VectorIndexConfig(kind="flat"),
    "hnsw": VectorIndexConfig(kind="hnsw", hnsw_m=32, ef_construction=80, ef_search=64),
    "hnsw-sq8": VectorIndexConfig(kind="hnsw-sq8", hnsw_m=32, ef_construction=80, ef_search=64),
    "ivf-flat": VectorIndexConfig(kind="ivf-flat", nlist=4096, nprobe=32),
    "ivf-sq8": VectorIndexConfig(kind="ivf-sq8", nlist=4096, nprobe=32),
    "ivf-pq": VectorIndexConfig(kind="ivf-pq", nlist=4096, nprobe=32, pq_m=48, rescore=10),
    "binary": VectorIndexConfig(kind="binary", rescore=10),
}
SWEEPS: dict[str, tuple[str, list[int]]] = {
    "hnsw": ("ef_search", [16, 32, 64, 128, 256]),
    "hnsw-sq8": ("ef_search", [16, 32, 64, 128, 256]),
    "ivf-flat": ("nprobe", [4, 8, 16, 32, 64, 128]),
    "ivf-sq8": ("nprobe", [4, 8, 16, 32, 64, 128]),
    "ivf-pq": ("nprobe", [4, 8, 16, 32, 64, 128]),
    "binary": ("rescore", [2, 5, 10, 20, 50]),
}
MIX, NOISE, SEED = 0.5, 0.5, 0
TEXT_CHARS = 400


_RSS_PROBE = """
import json, sys
import numpy as np
from densa.index import VectorIndex, VectorIndexConfig

def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) * 1024 for k in ("RssAnon", "RssFile")}

folder, queries = sys.argv[1], np.load(sys.argv[2])
before = rss()
index = VectorIndex.load(__import__("pathlib").Path(folder))
index.search(queries, 10)
after = rss()
print(json.dumps({k: after[k] - before[k] for k in after}))
"""


def serving_rss(folder: Path, queries: npt.NDArray[np.float32]) -> dict[str, int]:
    """RSS growth of a fresh process that loads the saved index and answers every query:
    the RAM a server needs for it, split into anonymous memory (heap: codes, graphs, lists)
    and file-backed pages (the memory-mapped float store of the lossy kinds, which the OS can
    drop and read again; only the rows that rescoring touched count)."""
    query_file = WORK / "scale-queries.npy"
    np.save(query_file, queries)
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(folder), str(query_file)],
        check=True,
        capture_output=True,
        text=True,
    )
    grown: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return grown


def real_base(
    data: Path, datasets: Sequence[str]
) -> tuple[npt.NDArray[np.float32], list[str], SentenceTransformerEncoder]:
    """Real passages and their fp32 MiniLM vectors: the documents of the datasets' bench
    indexes (``bench/work/<dataset>``, 256-token limit), each text cut to its first
    ``TEXT_CHARS`` characters (a passage-sized record to store and fetch)."""
    encoder = SentenceTransformerEncoder()
    vectors, texts = [], []
    for name in datasets:
        index = cached_index(data / name)
        found, full_texts = dense_vectors(index)
        vectors.append(found)
        texts += [t[:TEXT_CHARS] for t in full_texts]
        index.close()
    return np.concatenate(vectors), texts, encoder


def grow(base: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.float32]:
    """The module docstring's mixing, in blocks (the output is n x d float32)."""
    rng = np.random.default_rng(SEED)
    n_base, dim = base.shape
    out = np.empty((n, dim), np.float32)
    out[:n_base] = base[: min(n, n_base)]
    for start in range(n_base, n, 100_000):
        stop = min(n, start + 100_000)
        b = np.arange(start, stop) % n_base
        j = rng.integers(n_base, size=stop - start)
        a = rng.uniform(0, MIX, size=(stop - start, 1)).astype(np.float32)
        noise = rng.normal(scale=1 / np.sqrt(dim), size=(stop - start, dim)).astype(np.float32)
        v = (1 - a) * base[b] + a * base[j] + NOISE * noise
        out[start:stop] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def documents(texts: list[str], n: int) -> Iterator[Document]:
    """Passage ``i`` is document ``p{i}``; its text starts with ``[i]`` (see :func:`row_of`)."""
    for i in range(n):
        yield Document(f"p{i}", f"[{i}] {texts[i % len(texts)]}")


def row_of(text: str) -> int:
    return int(text[1 : text.index("]")])


def shown_params(config: VectorIndexConfig) -> str:
    """The parameters that matter for the kind, e.g. ``M=32 efC=80 efS=64``."""
    c = config
    return {
        "flat": "",
        "hnsw": f"M={c.hnsw_m} efC={c.ef_construction} efS={c.ef_search}",
        "hnsw-sq8": f"M={c.hnsw_m} efC={c.ef_construction} efS={c.ef_search}",
        "ivf-flat": f"nlist={c.nlist} nprobe={c.nprobe}",
        "ivf-sq8": f"nlist={c.nlist} nprobe={c.nprobe}",
        "ivf-pq": f"nlist={c.nlist} nprobe={c.nprobe} m={c.pq_m} rescore={c.rescore}k",
        "binary": f"rescore={c.rescore}k",
    }[c.kind]


def recall_at_10(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--datasets", default=",".join(DATASETS), help="corpora of the real base")
    args = parser.parse_args()
    command = "python bench/scale_1m.py " + " ".join(sys.argv[1:])

    datasets = args.datasets.split(",")
    base, texts, real = real_base(args.data, datasets)
    queries = [q.text for name in datasets for q in BeirDataset(args.data / name).queries("test")]
    if "scifact" in datasets:
        queries += [q.text for q in BeirDataset(args.data / "scifact").queries("train")]
    query_vectors = real.encode_queries(queries)
    vectors = grow(base, args.n)
    print(f"{len(base)} real passages grown to {len(vectors)}; {len(queries)} real queries", flush=True)

    exact = VectorIndex.build(vectors, VectorIndexConfig())
    _, truth = exact.search(query_vectors, 10)
    del exact

    folder = WORK / f"scale-{args.n}"
    feeder = PrecomputedEncoder(real, vectors, row_of)
    start = time.perf_counter()
    index = Index.build(
        documents(texts, args.n), folder, encoder=feeder, overwrite=True, resume=False, batch_size=8192
    )
    assert feeder.served == args.n == len(index)
    store_seconds = time.perf_counter() - start
    feeder = PrecomputedEncoder(real, vectors, row_of, count_truncated=False)  # for the other kinds
    sample = list(range(0, len(queries), max(1, len(queries) // args.latency_queries)))[
        : args.latency_queries
    ]
    latency_texts = [queries[i] for i in sample]
    flat_bytes = len(vectors) * vectors.shape[1] * 4
    summary: dict[str, Any] = {
        "n": args.n,
        "n_real_base": len(base),
        "queries_recall": len(queries),
        "queries_latency": len(sample),
        "index_build_seconds_with_flat_dense_and_bm25": store_seconds,
        "documents_bytes_on_disk": dir_bytes(folder),
        "growth": {"mix": MIX, "noise": NOISE, "seed": SEED},
    }
    with Index.open(folder) as plain:  # the other channels' end-to-end latency, fp32 queries
        summary["e2e_ms"] = {}
        for mode in ("bm25", "dense+bm25"):
            mode_searcher = Searcher(plain, SearchConfig(mode=mode))
            summary["e2e_ms"][mode] = latency_ms(lambda q, s=mode_searcher: s.hits([q], 10), latency_texts)
    print(summary, flush=True)
    kinds: dict[str, Any] = {}
    sweeps: dict[str, list[dict[str, float]]] = {}

    def save() -> None:
        rows = [
            [
                kind,
                r["params"],
                r["build_s"],
                r["codes_mb"],
                r["serving_rss_mb"],
                r["serving_anon_mb"],
                r["serving_file_mb"],
                r["disk_mb"],
                r["recall@10"],
                r["search_p50_ms"],
                r["search_p99_ms"],
                r["e2e_p50_ms"],
                r["e2e_p99_ms"],
                r["e2e_openvino_p50_ms"],
                r["e2e_openvino_p99_ms"],
            ]
            for kind, r in kinds.items()
        ]
        table = markdown_table(
            [
                "kind",
                "search params",
                "build s",
                "codes MB",
                "serving RSS MB",
                "of which anonymous MB",
                "of which file-backed MB",
                "disk MB",
                "recall@10",
                "search p50 ms",
                "search p99 ms",
                "e2e p50 ms",
                "e2e p99 ms",
                "e2e p50 ms, OpenVINO query",
                "e2e p99 ms, OpenVINO query",
            ],
            rows,
        )
        sweep_rows = [
            [k, p["param"], p["value"], p["recall@10"], p["search_p50_ms"]]
            for k, ps in sweeps.items()
            for p in ps
        ]
        table += "\n\nRecall vs latency (search only):\n\n" + markdown_table(
            ["kind", "param", "value", "recall@10", "search p50 ms"], sweep_rows
        )
        write_results("scale_1m", {"summary": summary, "kinds": kinds, "sweeps": sweeps}, table, command)
        plot(sweeps, kinds)

    for kind in args.kinds.split(","):
        config = KINDS[kind]
        name = "dense" if kind == "flat" else f"dense-{kind}"
        start = time.perf_counter()
        if kind == "flat":  # the index's own dense channel: time the FAISS build alone
            VectorIndex.build(vectors, config).save(WORK / "scale-flat-build")
            shutil.rmtree(WORK / "scale-flat-build")
        else:
            index = add_kind_channel(index, name, feeder, config)
        build = time.perf_counter() - start
        (segment,) = index.manifest.segments
        part = folder / "segments" / segment.name / name
        disk = dir_bytes(part)
        gc.collect()
        grown = serving_rss(part, query_vectors)
        with Index.open(folder) as torch_queries, Index.open(folder, backend="openvino") as openvino_queries:
            (vi,) = torch_queries.channel(name).parts  # type: ignore[attr-defined]
            assert vi.config.kind == kind
            _, found = vi.search(query_vectors, 10)
            ids = [str(i) for i in sample]
            search = latency_ms(lambda q, vi=vi: vi.search(query_vectors[int(q)][None, :], 10), ids)
            searcher = Searcher(torch_queries, SearchConfig(mode=name))
            e2e = latency_ms(lambda q, s=searcher: s.hits([q], 10), latency_texts)
            fast = Searcher(openvino_queries, SearchConfig(mode=name))
            e2e_fast = latency_ms(lambda q, s=fast: s.hits([q], 10), latency_texts)
            kinds[kind] = {
                "params": shown_params(config),
                "build_s": build,
                "codes_mb": vi.memory_bytes() / 2**20,
                "codes_fraction_of_float": vi.memory_bytes() / flat_bytes,
                "serving_rss_mb": (grown["RssAnon"] + grown["RssFile"]) / 2**20,
                "serving_anon_mb": grown["RssAnon"] / 2**20,
                "serving_file_mb": grown["RssFile"] / 2**20,
                "disk_mb": disk / 2**20,
                "recall@10": recall_at_10(found, truth),
                "search_p50_ms": search["p50_ms"],
                "search_p99_ms": search["p99_ms"],
                "e2e_p50_ms": e2e["p50_ms"],
                "e2e_p99_ms": e2e["p99_ms"],
                "e2e_openvino_p50_ms": e2e_fast["p50_ms"],
                "e2e_openvino_p99_ms": e2e_fast["p99_ms"],
            }
            print(kind, kinds[kind], flush=True)
            if kind in SWEEPS:
                param, values = SWEEPS[kind]
                sweeps[kind] = []
                for value in values:
                    vi.set_search_params(**{param: value})
                    _, found = vi.search(query_vectors, 10)
                    lat = latency_ms(
                        lambda q, vi=vi: vi.search(query_vectors[int(q)][None, :], 10), ids[:200]
                    )
                    sweeps[kind].append(
                        {
                            "param": param,
                            "value": value,
                            "recall@10": recall_at_10(found, truth),
                            "search_p50_ms": lat["p50_ms"],
                        }
                    )
        save()
    print((RESULTS / "scale_1m.md").read_text())


def plot(sweeps: dict[str, list[dict[str, float]]], kinds: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, points in sweeps.items():
        ax.plot(
            [p["search_p50_ms"] for p in points], [p["recall@10"] for p in points], marker="o", label=kind
        )
    if "flat" in kinds:
        ax.scatter(
            [kinds["flat"]["search_p50_ms"]], [1.0], marker="*", s=120, color="black", label="flat (exact)"
        )
    ax.set_xscale("log")
    ax.set_xlabel("single-query search latency p50 (ms, log scale)")
    ax.set_ylabel("recall@10 vs exact")
    ax.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("1M passages, 384-d MiniLM vectors, 2 CPU cores")
    fig.tight_layout()
    fig.savefig(RESULTS / "scale_1m.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
