"""densa's BM25 channel against bm25s on each collection: same top 10, same scores, and the time.

Both index the same texts (title and text) with the same analysis and Lucene's BM25 (k1 1.5,
b 0.75); bm25s precomputes a score matrix, densa keeps term-frequency postings and scores with
the collection's statistics at query time (what lets segments and deletes keep exact scores).
For every test query: whether the top 10 ids are identical; if not, whether they differ only
inside ties (the same score at every rank, the ids of equal scores in another order); the
largest score difference over them; the time to index and to answer all queries, one batch.

Run::

    .venv/bin/python bench/bm25_parity.py --data ../shared/data

Writes ``bench/results/bm25_parity.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import DEFAULT_DATA, markdown_table, read_dataset_corpus, write_results
from densa.corpus import BeirDataset
from densa.index.channels.bm25 import bm25_top_k

DATASETS = ("scifact", "cranfield", "msmarco-dl19-subset")


def main() -> None:
    import bm25s
    import Stemmer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    rows = []
    for name in DATASETS:
        dataset = BeirDataset(args.data / name)
        texts = [d.full_text for d in read_dataset_corpus(dataset.root)]
        queries = [q.text for q in dataset.queries("test")]
        start = time.perf_counter()
        ours = bm25_top_k(texts, queries, 10)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        stemmer = Stemmer.Stemmer("english")
        retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        retriever.index(
            bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
        )
        tokens = bm25s.tokenize(
            queries, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        ids, scores = retriever.retrieve(tokens, k=10, show_progress=False)
        theirs_s = time.perf_counter() - start
        same = tie_order = 0
        worst = 0.0
        for found, their_ids, their_scores in zip(ours, ids, scores, strict=True):
            keep = their_scores > 0  # bm25s pads with zero scores; densa leaves non-matches out
            mine, theirs = found.scores[:10], their_scores[keep]
            n = min(len(mine), len(theirs))
            if n:
                worst = max(worst, float(np.abs(mine[:n] - theirs[:n]).max()))
            if found.ids[:10].tolist() == their_ids[keep].tolist():
                same += 1
            elif len(mine) == len(theirs) and np.allclose(mine, theirs, rtol=0, atol=1e-5):
                tie_order += 1
        rows.append(
            {
                "dataset": name,
                "queries": len(queries),
                "identical_top10": same,
                "differ_only_in_tie_order": tie_order,
                "max_score_difference": worst,
                "densa_seconds": ours_s,
                "bm25s_seconds": theirs_s,
            }
        )
        print(rows[-1], flush=True)
    table = markdown_table(
        [
            "dataset",
            "queries",
            "identical top 10",
            "differ only in tie order",
            "max score difference",
            "densa s (index + search)",
            "bm25s s",
        ],
        [
            [
                r["dataset"],
                r["queries"],
                r["identical_top10"],
                r["differ_only_in_tie_order"],
                f"{r['max_score_difference']:.1e}",
                r["densa_seconds"],
                r["bm25s_seconds"],
            ]
            for r in rows
        ],
    )
    write_results(
        "bm25_parity", {"rows": rows}, table, "python bench/bm25_parity.py " + " ".join(sys.argv[1:])
    )
    print(table)


if __name__ == "__main__":
    main()
