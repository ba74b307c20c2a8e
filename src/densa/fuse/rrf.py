"""Reciprocal Rank Fusion (Cormack, Clarke & Büttcher 2009).

``score(d) = Σ_i w_i / (k + rank_i(d))`` over the rankings that contain ``d``; ranks start
at 1. Only ranks matter, so scores on different scales (cosine, BM25) fuse without
normalisation. ``k = 60`` is the paper's constant.

Examples
--------
>>> fused = reciprocal_rank_fusion([{"a": 0.9, "b": 0.5}, {"b": 12.0, "c": 3.0}], k=60)
>>> sorted(fused, key=fused.get, reverse=True)
['b', 'a', 'c']
>>> round(fused["b"], 6) == round(1 / 62 + 1 / 61, 6)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from densa.types import K, rank_items

__all__ = ["reciprocal_rank_fusion"]


def reciprocal_rank_fusion(
    rankings: Sequence[Mapping[K, float]], k: float = 60.0, weights: Sequence[float] | None = None
) -> dict[K, float]:
    """Fuse score maps by reciprocal rank; ``weights`` scale each ranking's votes (default 1)."""
    weights = weights if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    fused: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (key, _) in enumerate(rank_items(ranking.items()), start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused
