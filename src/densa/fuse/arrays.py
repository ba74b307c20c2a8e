"""Rankings as arrays: the shape every fusion method works on.

A ranking is ``(ids, scores)``: integer ids (row ids in a snapshot, or codes of document ids
in a run file) and their scores. :func:`encode_keys` turns ``{key: score}`` maps into such
arrays with codes that sort as the keys do, so that breaking ties by code breaks them by
document id, as trec_eval does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from densa.types import K

__all__ = ["Ranking", "TieBreak", "decode", "encode_keys", "ranks", "union"]

Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float64]
Ranking = tuple[Ids, Scores]
#: ``id``: tied scores are ranked by id, descending (trec_eval's order when ids code document
#: ids). ``shared``: tied scores share the best of their ranks (when ids carry no order).
TieBreak = Literal["id", "shared"]


def encode_keys(rankings: Sequence[Mapping[K, float]]) -> tuple[list[K], list[Ranking]]:
    """Every key of ``rankings`` sorted, and each ranking as ``(codes, scores)`` arrays."""
    keys: list[K] = sorted({key for r in rankings for key in r})
    code = {key: i for i, key in enumerate(keys)}
    arrays = [
        (
            np.fromiter((code[key] for key in r), np.int64, len(r)),
            np.fromiter(r.values(), np.float64, len(r)),
        )
        for r in rankings
    ]
    return keys, arrays


def decode(keys: Sequence[K], ranking: Ranking) -> dict[K, float]:
    ids, scores = ranking
    return {keys[i]: float(s) for i, s in zip(ids.tolist(), scores.tolist(), strict=True)}


def ranks(ids: Ids, scores: Scores, ties: TieBreak) -> npt.NDArray[np.float64]:
    """1-based rank of each item (score descending)."""
    if ties == "id":
        order = np.lexsort((-ids, -scores))
        out = np.empty(len(ids), np.float64)
        out[order] = np.arange(1, len(ids) + 1)
        return out
    ordered = np.sort(-scores)
    return (np.searchsorted(ordered, -scores, side="left") + 1).astype(np.float64)


def union(rankings: Sequence[Ranking]) -> Ids:
    """Every id of any ranking, sorted."""
    if not rankings:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate([ids for ids, _ in rankings]))
