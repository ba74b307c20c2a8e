"""Evaluation stage: trec_eval-compatible metrics on runs and BEIR datasets."""

from densa.evaluate.metrics import DEFAULT_METRICS, EvalResult, evaluate
from densa.evaluate.pipeline import depth_for, evaluate_channels, evaluate_dataset

__all__ = ["DEFAULT_METRICS", "EvalResult", "depth_for", "evaluate", "evaluate_channels", "evaluate_dataset"]
