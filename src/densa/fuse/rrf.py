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

import numpy as np

from densa.fuse.arrays import Ranking, TieBreak, decode, encode_keys, ranks, union
from densa.types import K

__all__ = ["reciprocal_rank_fusion", "rrf_arrays"]


def rrf_arrays(rankings: Sequence[Ranking], k: float, weights: Sequence[float], ties: TieBreak) -> Ranking:
    """RRF over ``(ids, scores)`` rankings; returns the fused ``(ids, scores)``."""
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    ids = union(rankings)
    fused = np.zeros(len(ids), np.float64)
    for (r_ids, r_scores), weight in zip(rankings, weights, strict=True):
        at = np.searchsorted(ids, r_ids)
        fused[at] += weight / (k + ranks(r_ids, r_scores, ties))
    return ids, fused


def reciprocal_rank_fusion(
    rankings: Sequence[Mapping[K, float]], k: float = 60.0, weights: Sequence[float] | None = None
) -> dict[K, float]:
    """Fuse score maps by reciprocal rank; ``weights`` scale each ranking's votes (default 1).
    Tied scores are ranked by key, descending (trec_eval's order)."""
    keys, arrays = encode_keys(rankings)
    return decode(
        keys, rrf_arrays(arrays, k, weights if weights is not None else [1.0] * len(rankings), "id")
    )
