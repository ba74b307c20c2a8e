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

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from densa.fuse.arrays import Ranking, decode, encode_keys, union
from densa.types import K

__all__ = [
    "Normalization",
    "normalize",
    "normalize_scores",
    "normalized_matrix",
    "weighted_arrays",
    "weighted_fusion",
]

Normalization = Literal["minmax", "zscore"]


def normalize(scores: npt.NDArray[np.float64], method: Normalization) -> npt.NDArray[np.float64]:
    """One ranking's scores on the common scale (an all-equal ranking maps to 1 / 0)."""
    if not len(scores):
        return scores
    scores = np.asarray(scores, np.float64)
    if method == "minmax":
        low, span = scores.min(), scores.max() - scores.min()
        return (scores - low) / span if span > 0 else np.ones_like(scores)
    if method == "zscore":
        std = scores.std()
        return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    raise ValueError(f"unknown normalisation {method!r}")


def normalize_scores(scores: Mapping[K, float], method: Normalization) -> dict[K, float]:
    """:func:`normalize` on a ``{key: score}`` map."""
    values = normalize(np.fromiter(scores.values(), np.float64, len(scores)), method)
    return dict(zip(scores, values.tolist(), strict=True))


def weighted_arrays(
    rankings: Sequence[Ranking], weights: Sequence[float], normalization: Normalization
) -> Ranking:
    """Weighted sum of normalised scores over the union of ``(ids, scores)`` rankings."""
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    ids, matrix = normalized_matrix(rankings, normalization)
    fused = np.zeros(len(ids), np.float64)
    for column, weight in zip(matrix, weights, strict=True):
        fused += weight * column
    return ids, fused


def normalized_matrix(
    rankings: Sequence[Ranking], normalization: Normalization
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The union of the rankings' ids and a ``[rankings, ids]`` matrix of their normalised
    scores, a ranking's lowest value where it misses an id: what :func:`weighted_arrays`
    weighs, and what a search over weights scores at once."""
    ids = union(rankings)
    matrix = np.empty((len(rankings), len(ids)), np.float64)
    for row, (r_ids, r_scores) in enumerate(rankings):
        norm = normalize(r_scores, normalization)
        matrix[row] = norm.min() if len(norm) else 0.0
        matrix[row, np.searchsorted(ids, r_ids)] = norm
    return ids, matrix


def weighted_fusion(
    rankings: Sequence[Mapping[K, float]],
    weights: Sequence[float],
    normalization: Normalization = "minmax",
) -> dict[K, float]:
    """Weighted sum of normalised scores over the union of the rankings' documents."""
    keys, arrays = encode_keys(rankings)
    return decode(keys, weighted_arrays(arrays, weights, normalization))
