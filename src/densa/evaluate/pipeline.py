"""Evaluate a retriever on a BEIR dataset split."""

from __future__ import annotations

import re
from collections.abc import Sequence

from densa.corpus.beir import BeirDataset
from densa.evaluate.metrics import DEFAULT_METRICS, EvalResult, evaluate
from densa.search.retriever import Retriever
from densa.types import Run

__all__ = ["depth_for", "evaluate_dataset"]


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
