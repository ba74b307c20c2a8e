"""Core benchmark: index + evaluate BEIR datasets with the bundled model.

For each dataset: densa's indexing speed beside plain sentence-transformers ``encode`` +
FAISS flat on the same documents in the same run, retrieval quality on the test split,
and single-query latency (encode + search + fetch documents), one query at a time.

Run::

    .venv/bin/python bench/core.py --data ../shared/data

Writes ``bench/results/core.json`` and ``bench/results/core.md``, and leaves the indexes in
``bench/work/`` for ``bench/hybrid.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import DEFAULT_DATA, WORK, latency_ms, markdown_table, read_dataset_corpus, write_results
from densa.corpus import BeirDataset
from densa.encode import DEFAULT_MODEL, SentenceTransformerEncoder, resolve_model_path
from densa.evaluate import evaluate_dataset
from densa.index import Index
from densa.search import Searcher

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")


def plain_sentence_transformers_docs_per_s(corpus: Path) -> float:
    """The baseline: sentence-transformers ``encode`` then ``faiss.IndexFlatIP.add``."""
    import faiss
    from sentence_transformers import SentenceTransformer

    texts = [d.full_text for d in read_dataset_corpus(corpus.parent)]
    model = SentenceTransformer(str(resolve_model_path(DEFAULT_MODEL)), device="cpu")
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return len(texts) / (time.perf_counter() - start)


def run_dataset(root: Path, encoder: SentenceTransformerEncoder) -> dict[str, object]:
    dataset = BeirDataset(root)
    corpus = read_dataset_corpus(root)
    index = Index.build(corpus, WORK / root.name, encoder=encoder, overwrite=True, progress=True)
    stats = index.build_stats
    assert stats is not None
    result, _ = evaluate_dataset(Searcher(index), dataset, "test")
    queries = [q.text for q in dataset.queries("test")][:200]
    latency = latency_ms(lambda q: index.search([q], 10), queries)
    baseline = plain_sentence_transformers_docs_per_s(dataset.corpus_path)
    return {
        "dataset": root.name,
        "documents": stats.documents,
        "truncated": stats.truncated,
        "metrics": result.metrics,
        "densa_docs_per_s": stats.docs_per_second,
        "st_faiss_docs_per_s": baseline,
        "speed_ratio": stats.docs_per_second / baseline,
        "latency": latency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    encoder = SentenceTransformerEncoder()
    rows = [run_dataset(args.data / name, encoder) for name in args.datasets]
    table = markdown_table(
        [
            "dataset",
            "docs",
            "nDCG@10",
            "Recall@100",
            "MRR@10",
            "acc@1",
            "acc@20",
            "densa docs/s",
            "ST+FAISS docs/s",
            "ratio",
            "query p50 ms",
            "query p99 ms",
        ],
        [
            [
                r["dataset"],
                r["documents"],
                r["metrics"]["ndcg@10"],
                r["metrics"]["recall@100"],  # type: ignore[index]
                r["metrics"]["mrr@10"],
                r["metrics"]["accuracy@1"],
                r["metrics"]["accuracy@20"],  # type: ignore[index]
                round(r["densa_docs_per_s"], 1),
                round(r["st_faiss_docs_per_s"], 1),  # type: ignore[arg-type]
                round(r["speed_ratio"], 2),
                round(r["latency"]["p50_ms"], 1),
                round(r["latency"]["p99_ms"], 1),
            ]  # type: ignore[arg-type, index]
            for r in rows
        ],
    )
    command = "python bench/core.py " + " ".join(sys.argv[1:])
    write_results(
        "core",
        {"model": "all-MiniLM-L6-v2 (bundled)", "index": "flat", "results": rows},
        table,
        command,
    )
    print(table)


if __name__ == "__main__":
    main()
