"""Retrieval metrics with trec_eval semantics (through pytrec_eval).

* ``ndcg@k`` — trec_eval's ``ndcg_cut.k`` with graded gains (Järvelin & Kekäläinen 2002).
* ``recall@k`` — trec_eval's ``recall.k`` (relevant = grade > 0).
* ``precision@k`` — trec_eval's ``P.k``.
* ``map@k`` — trec_eval's ``map_cut.k``.
* ``mrr@k`` — reciprocal rank of the first relevant document within the top ``k``
  (MS MARCO's MRR@10): trec_eval's ``recip_rank`` on the run cut to ``k``.
* ``accuracy@k`` — DPR's top-k retrieval accuracy (Karpukhin et al. 2020): 1 if any
  relevant document is in the top ``k``.

Every judged query counts: a query in the qrels with no results scores 0 (pytrec_eval
alone would drop it). Ranks follow trec_eval's tie order, see :func:`densa.types.rank_items`.

Examples
--------
>>> run = Run({"q1": {"d1": 0.9, "d2": 0.8}, "q2": {"d3": 0.5}})
>>> qrels = Qrels({"q1": {"d2": 1}, "q2": {"d4": 1}, "q3": {"d1": 1}})
>>> result = evaluate(run, qrels, ["mrr@10", "accuracy@1"])
>>> result.metrics
{'mrr@10': 0.16666666666666666, 'accuracy@1': 0.0, 'queries': 3}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from densa.errors import DensaError
from densa.types import Qrels, Run

__all__ = ["DEFAULT_METRICS", "EvalResult", "evaluate"]

DEFAULT_METRICS = (
    "ndcg@10",
    "recall@100",
    "mrr@10",
    "accuracy@1",
    "accuracy@5",
    "accuracy@20",
    "accuracy@100",
)

_PYTREC = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut"}
_NAME = re.compile(r"^(ndcg|recall|precision|map|mrr|accuracy)@([1-9][0-9]*)$")


@dataclass(frozen=True)
class EvalResult:
    """Mean of each metric over the judged queries, and the per-query values."""

    metrics: dict[str, float | int]
    per_query: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.metrics)


def _parse(name: str) -> tuple[str, int]:
    match = _NAME.match(name)
    if not match:
        raise DensaError(f"unknown metric {name!r}; use ndcg|recall|precision|map|mrr|accuracy@K")
    return match.group(1), int(match.group(2))


def evaluate(run: Run, qrels: Qrels, metrics: Sequence[str] = DEFAULT_METRICS) -> EvalResult:
    """Score ``run`` against ``qrels``; means are over every query that has judgements."""
    import pytrec_eval

    parsed = [(name, *_parse(name)) for name in metrics]
    judged = qrels.to_beir()
    qids = sorted(judged)
    per_query: dict[str, dict[str, float]] = {q: {} for q in qids}

    trec_measures = {f"{_PYTREC[m]}.{k}" for _, m, k in parsed if m in _PYTREC}
    if trec_measures:
        full = {q: dict(run.scores.get(q, {})) for q in qids if run.scores.get(q)}
        scores = pytrec_eval.RelevanceEvaluator(judged, trec_measures).evaluate(full)
        for name, measure, k in parsed:
            if measure in _PYTREC:
                key = f"{_PYTREC[measure]}_{k}"
                for q in qids:
                    per_query[q][name] = float(scores.get(q, {}).get(key, 0.0))

    for name, measure, k in parsed:
        if measure == "mrr":
            cut = {q: {h.doc_id: h.score for h in run.ranked(q, k)} for q in qids if run.scores.get(q)}
            rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(cut)
            for q in qids:
                per_query[q][name] = float(rr.get(q, {}).get("recip_rank", 0.0))
        elif measure == "accuracy":
            for q in qids:
                relevant = qrels.relevant(q)
                per_query[q][name] = float(any(h.doc_id in relevant for h in run.ranked(q, k)))

    means: dict[str, float | int] = {
        name: (sum(per_query[q][name] for q in qids) / len(qids) if qids else 0.0) for name, _, _ in parsed
    }
    means["queries"] = len(qids)
    return EvalResult(means, per_query)
