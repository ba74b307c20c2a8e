"""Evaluate a retriever on a BEIR dataset split."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from densa.corpus.beir import BeirDataset
from densa.evaluate.metrics import DEFAULT_METRICS, EvalResult, evaluate
from densa.search.retriever import Retriever
from densa.search.searcher import Searcher
from densa.types import Run

__all__ = ["depth_for", "evaluate_channels", "evaluate_dataset"]


def depth_for(metrics: Sequence[str]) -> int:
    """How many results per query the metrics need (the largest cut-off).

    Examples
    --------
    >>> depth_for(["ndcg@10", "recall@100"])
    100
    """
    return max(int(m) for m in re.findall(r"@(\d+)", " ".join(metrics)))


def evaluate_dataset(
    retriever: Retriever,
    dataset: BeirDataset,
    split: str = "test",
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> tuple[EvalResult, Run]:
    """Retrieve for every judged query of ``split`` and score the run against its qrels."""
    qrels = dataset.qrels(split)
    run = retriever.search(dataset.queries(split), depth_for(metrics))
    return evaluate(run, qrels, metrics), run


def evaluate_channels(
    searcher: Searcher,
    dataset: BeirDataset,
    split: str = "test",
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, EvalResult]:
    """Each channel a fused search combines, alone (no reranker), by channel name: the figures
    ``densa eval`` prints beside the fused ones. Empty for a single-channel search."""
    names = searcher.channels
    if len(names) < 2:
        return {}
    return {
        name: evaluate_dataset(
            Searcher(searcher.index, replace(searcher.config, mode=name)), dataset, split, metrics
        )[0]
        for name in names
    }
