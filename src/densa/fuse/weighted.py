"""Weighted fusion of normalised scores (convex combination; Bruch, Gai & Ingber 2023).

Each ranking's scores are first put on a common scale, per query:

* ``minmax``: ``(s - min) / (max - min)``, so the best is 1 and the worst retrieved is 0;
* ``zscore``: ``(s - mean) / std``.

then ``score(d) = Σ_i w_i · norm_i(d)``. A document missing from a ranking gets that
ranking's lowest normalised value (0 for min-max), i.e. it counts as no better than the
worst document the ranking returned.

Examples
--------
>>> fused = weighted_fusion([{"a": 0.9, "b": 0.5}, {"b": 12.0, "c": 3.0}], weights=[0.5, 0.5])
>>> {key: round(v, 3) for key, v in sorted(fused.items())}
{'a': 0.5, 'b': 0.5, 'c': 0.0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from densa.types import K

__all__ = ["Normalization", "normalize_scores", "weighted_fusion"]

Normalization = Literal["minmax", "zscore"]


def normalize_scores(scores: Mapping[K, float], method: Normalization) -> dict[K, float]:
    """One ranking's scores on the common scale (an all-equal ranking maps to 1 / 0)."""
    if not scores:
        return {}
    values = list(scores.values())
    if method == "minmax":
        low, high = min(values), max(values)
        span = high - low
        return {key: (s - low) / span if span > 0 else 1.0 for key, s in scores.items()}
    if method == "zscore":
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return {key: (s - mean) / std if std > 0 else 0.0 for key, s in scores.items()}
    raise ValueError(f"unknown normalisation {method!r}")


def weighted_fusion(
    rankings: Sequence[Mapping[K, float]],
    weights: Sequence[float],
    normalization: Normalization = "minmax",
) -> dict[K, float]:
    """Weighted sum of normalised scores over the union of the rankings' documents."""
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    normalized = [normalize_scores(r, normalization) for r in rankings]
    keys = {key for r in rankings for key in r}
    fused = dict.fromkeys(keys, 0.0)
    for norm, weight in zip(normalized, weights, strict=True):
        floor = min(norm.values(), default=0.0)
        for key in keys:
            fused[key] += weight * norm.get(key, floor)
    return fused
