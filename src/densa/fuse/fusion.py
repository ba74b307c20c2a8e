"""Fusion configuration, and fusion of whole runs (``densa fuse A.trec B.trec``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from densa.errors import ConfigError
from densa.fuse.rrf import reciprocal_rank_fusion
from densa.fuse.weighted import Normalization, weighted_fusion
from densa.types import K, Run

__all__ = ["FusionConfig", "fuse", "fuse_runs"]


@dataclass(frozen=True)
class FusionConfig:
    """How to fuse rankings.

    The default (weighted, z-score, 0.5/0.5) scored best of 40 candidates on SciFact's
    *train* queries (``bench/tune_hybrid.py``; test queries were not used). RRF's constant
    stays at the paper's 60 (k=10 did 0.006 better on train).

    Parameters
    ----------
    method
        ``rrf`` (reciprocal rank fusion) or ``weighted`` (normalised score sum).
    rrf_k
        RRF's rank constant.
    weights
        One weight per ranking, in order (dense first, then BM25, in hybrid search).
    normalization
        Score normalisation of ``weighted``: ``minmax`` or ``zscore``.
    """

    method: Literal["rrf", "weighted"] = "weighted"
    rrf_k: float = 60.0
    weights: tuple[float, ...] = (0.5, 0.5)
    normalization: Normalization = "zscore"

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "weighted"):
            raise ConfigError(f"fusion method must be 'rrf' or 'weighted', got {self.method!r}")
        if self.normalization not in ("minmax", "zscore"):
            raise ConfigError(f"normalisation must be 'minmax' or 'zscore', got {self.normalization!r}")
        if self.rrf_k <= 0 or any(w < 0 for w in self.weights):
            raise ConfigError("rrf_k must be positive and weights non-negative")


def fuse(rankings: Sequence[Mapping[K, float]], config: FusionConfig) -> dict[K, float]:
    """Fuse one query's rankings (``{key: score}`` maps) as ``config`` says."""
    weights = list(config.weights) if len(config.weights) == len(rankings) else [1.0] * len(rankings)
    if config.method == "rrf":
        return reciprocal_rank_fusion(rankings, config.rrf_k, weights)
    return weighted_fusion(rankings, weights, config.normalization)


def fuse_runs(runs: Sequence[Run], config: FusionConfig, k: int | None = None) -> Run:
    """Fuse runs query by query (the union of their queries), keeping the top ``k`` per query."""
    if len(runs) < 2:
        raise ConfigError("fusion needs at least two runs")
    qids = sorted({q for run in runs for q in run.scores})
    fused = Run(
        {q: fuse([run.scores.get(q, {}) for run in runs], config) for q in qids},
        name=f"densa-{config.method}",
    )
    return fused.top(k) if k is not None else fused
