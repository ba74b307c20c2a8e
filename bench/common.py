"""Helpers shared by the benchmark scripts: timing, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
WORK = Path(__file__).parent / "work"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def python_loop_seconds() -> float:
    """Seconds for ten million pure-Python additions: this machine's speed on the day, so that
    runs on different days (the shared CPUs here vary by 2-3x) can be compared."""
    start, total = time.perf_counter(), 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - start, 3)


def cpu_model() -> str:
    """The CPU's model name as Linux reports it ("?" elsewhere): costs differ by CPU (an AMX
    Xeon and an EPYC rank batch shapes differently), so every result records it."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "?"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")


def machine() -> dict[str, Any]:
    import torch

    return {
        "python_loop_s": python_loop_seconds(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def latency_ms(fn: Callable[[str], object], queries: Sequence[str], warmup: int = 5) -> dict[str, float]:
    """p50 / p99 / mean wall time of ``fn(query)`` over ``queries``, one at a time."""
    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - start) * 1000)
    arr = np.asarray(times)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
        "n": len(times),
    }


def write_results(name: str, payload: dict[str, Any], table: str, command: str) -> None:
    """Write ``bench/results/<name>.json`` and ``<name>.md`` (with the command that made them)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    header = (
        f"# {name}\n\nProduced by `{command}` on {payload['machine']['cpu_count']} CPU cores "
        f"({payload['machine']['cpu_model']}; ten million Python additions took "
        f"{payload['machine']['python_loop_s']} s).\n\n"
    )
    (RESULTS / f"{name}.md").write_text(header + table + "\n", encoding="utf-8")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def cached_index(dataset_root: Path, rebuild: bool = False) -> Any:
    """The dataset's index under ``bench/work/`` (default model, flat), built if missing."""
    from densa.index import Index

    path = WORK / dataset_root.name
    if (path / "manifest.json").exists() and not rebuild:
        return Index.open(path)
    return Index.build(read_dataset_corpus(dataset_root), path, overwrite=True, progress=True)


def with_channel(dataset_root: Path, suffix: str, name: str, config: Any) -> tuple[Any, float | None]:
    """A copy of the dataset's bench index (``bench/work/<dataset>-<suffix>``, made if missing,
    without the copied fusion calibration) with channel ``name`` added from ``config`` if it is
    not there yet; the seconds adding it took (``None``: it was there)."""
    from densa.index import Index

    target = WORK / f"{dataset_root.name}-{suffix}"
    if not (target / "manifest.json").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(cached_index(dataset_root).path, target)
        (target / "fusion-calibration.npz").unlink(missing_ok=True)
    seconds = None
    if name not in Index.open(target).channels:
        start = time.perf_counter()
        Index.open(target).add_channel(name, config, progress=True)
        seconds = time.perf_counter() - start
    return Index.open(target), seconds


def ndcg_on_test(index: Any, dataset: Any, mode: str) -> float:
    """nDCG@10 of ``mode`` on the dataset's test split."""
    from densa.evaluate import evaluate_dataset
    from densa.search import SearchConfig, Searcher

    result, _ = evaluate_dataset(Searcher(index, SearchConfig(mode=mode)), dataset, "test", ["ndcg@10"])
    return float(result.metrics["ndcg@10"])


def read_dataset_corpus(dataset_root: Path) -> Iterator[Any]:
    """The dataset's documents, skipping (and printing) records without any text, as
    ``densa index --skip-bad`` does: Cranfield has two empty documents."""
    from densa.corpus import BeirDataset, SkipReport, read_corpus

    report = SkipReport()
    yield from read_corpus(BeirDataset(dataset_root).corpus_path, skip_bad=True, report=report)
    if len(report):
        print(report.summary())


def dense_vectors(index: Any) -> tuple[np.ndarray, list[str]]:
    """A fresh, unchunked index's dense vectors in row order, and the text each was encoded from
    (title and text: one passage per document)."""
    vectors = np.concatenate([part.all_vectors() for part in index.channel("dense").parts])
    texts = [doc.full_text for _, doc in index.snapshot.iter_documents()]
    assert len(vectors) == len(texts), "expected one passage per document and no deletes"
    return vectors, texts


def add_kind_channel(index: Any, name: str, feeder: PrecomputedEncoder, config: Any) -> Any:
    """``index`` with one more dense channel, ``name``, of the FAISS kind ``config`` describes,
    built from ``feeder``'s precomputed vectors through ``Index.add_channel`` (no re-encoding)."""
    from densa.index import DenseChannel

    return index.add_channel(name, DenseChannel(feeder, config), batch_size=8192)


class PrecomputedEncoder:
    """Hands out precomputed passage vectors to ``Index.build``; queries go to ``real``.

    ``row_of(text)`` names the row of ``vectors`` that belongs to a passage text (the build
    encodes passages longest first, not in corpus order). Lets a bench time encoding once and
    reuse the vectors, or index vectors it made itself. ``served`` counts the rows handed out.
    Its spec is the real encoder's, so an index built with it reopens with the real model.
    """

    def __init__(
        self, real: Any, vectors: np.ndarray, row_of: Callable[[str], int], *, count_truncated: bool = True
    ) -> None:
        self._real = real
        self._vectors = vectors
        self._row_of = row_of
        self._count = count_truncated
        self.served = 0

    @property
    def spec(self) -> Any:
        return self._real.spec

    @property
    def tokenizer(self) -> Any:
        return self._real.tokenizer

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._real.encode_queries(texts))

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.served += len(texts)
        return np.ascontiguousarray(self._vectors[[self._row_of(t) for t in texts]], dtype=np.float32)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """The real tokenizer's count, or 0 when the bench does not report it (``count_truncated=False``
        skips tokenising every text again for each extra channel)."""
        return int(self._real.count_truncated(texts)) if self._count else 0
