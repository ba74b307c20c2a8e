"""Metrics against values computed by hand from the definitions."""

from __future__ import annotations

import math

import pytest

from densa.errors import DensaError
from densa.evaluate import evaluate
from densa.types import Qrels, Run

QRELS = Qrels({"q1": {"d1": 2, "d2": 1, "d5": 0}, "q2": {"d3": 1}, "q3": {"d9": 1}})
# q2 has a tie: trec_eval ranks d7 before d3 (document id descending); q3 has no results.
RUN = Run({"q1": {"d4": 0.9, "d1": 0.8, "d2": 0.7, "d5": 0.6}, "q2": {"d3": 0.5, "d7": 0.5}})

NDCG_Q1 = (2 / math.log2(3) + 1 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
NDCG_Q2 = (1 / math.log2(3)) / 1.0


def test_default_metrics_match_hand_computed_values() -> None:
    result = evaluate(RUN, QRELS)
    m = result.metrics
    assert m["queries"] == 3
    assert m["ndcg@10"] == pytest.approx((NDCG_Q1 + NDCG_Q2 + 0.0) / 3)
    assert m["recall@100"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert m["accuracy@1"] == 0.0
    assert m["accuracy@5"] == pytest.approx(2 / 3)
    assert m["accuracy@20"] == pytest.approx(2 / 3)
    assert m["accuracy@100"] == pytest.approx(2 / 3)
    assert result.per_query["q1"]["ndcg@10"] == pytest.approx(NDCG_Q1)
    assert result.per_query["q3"] == {name: 0.0 for name in result.per_query["q3"]}


def test_cutoffs_apply_in_trec_eval_rank_order() -> None:
    m = evaluate(RUN, QRELS, ["mrr@1", "ndcg@1", "recall@2", "precision@2", "accuracy@2"]).metrics
    assert m["mrr@1"] == 0.0  # d4 and d7 are ranked first and are not relevant
    assert m["ndcg@1"] == 0.0
    assert m["recall@2"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["precision@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert m["accuracy@2"] == pytest.approx(2 / 3)


def test_graded_gains_are_honoured() -> None:
    grade_two_first = Run({"q": {"a": 2.0, "b": 1.0}})
    grade_one_first = Run({"q": {"a": 1.0, "b": 2.0}})
    qrels = Qrels({"q": {"a": 2, "b": 1}})
    assert evaluate(grade_two_first, qrels, ["ndcg@10"]).metrics["ndcg@10"] == pytest.approx(1.0)
    worse = (1 / 1 + 2 / math.log2(3)) / (2 / 1 + 1 / math.log2(3))
    assert evaluate(grade_one_first, qrels, ["ndcg@10"]).metrics["ndcg@10"] == pytest.approx(worse)


def test_unjudged_queries_in_the_run_are_ignored() -> None:
    run = Run({"q1": {"d1": 1.0}, "extra": {"d1": 1.0}})
    m = evaluate(run, Qrels({"q1": {"d1": 1}}), ["mrr@10"]).metrics
    assert m == {"mrr@10": 1.0, "queries": 1}


def test_agrees_with_pytrec_eval_where_it_scores() -> None:
    import pytrec_eval

    reference = pytrec_eval.RelevanceEvaluator(QRELS.to_beir(), {"ndcg_cut.10", "recall.100"}).evaluate(
        RUN.to_beir()
    )
    ours = evaluate(RUN, QRELS).per_query
    for qid in ("q1", "q2"):
        assert ours[qid]["ndcg@10"] == pytest.approx(reference[qid]["ndcg_cut_10"])
        assert ours[qid]["recall@100"] == pytest.approx(reference[qid]["recall_100"])
    assert "q3" not in reference  # pytrec_eval drops it; densa scores it 0


def test_unknown_metric_name() -> None:
    with pytest.raises(DensaError, match="unknown metric"):
        evaluate(RUN, QRELS, ["bleu@4"])
