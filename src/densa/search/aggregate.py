"""Passage scores -> document scores, vectorised (no Python loop per hit).

``max`` is MaxP (a document scores as its best passage; Dai & Callan 2019, as DPR retrieves
passages); ``sum`` adds its ``top`` best passages' scores.

Examples
--------
>>> pids, scores = np.array([10, 11, 12, 13]), np.array([0.9, 0.8, 0.7, 0.1], np.float32)
>>> rids = np.array([1, 2, 1, 1])
>>> r, s, best = aggregate(pids, scores, rids, "sum", top=2)
>>> r.tolist(), [round(float(x), 2) for x in s], best.tolist()
([1, 2], [1.6, 0.8], [10, 11])
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from densa.search.config import Aggregate

__all__ = ["aggregate"]

Ids = npt.NDArray[np.int64]


def aggregate(
    pids: Ids, scores: npt.NDArray[np.float32], rids: Ids, how: Aggregate, top: int = 3
) -> tuple[Ids, npt.NDArray[np.float32], Ids]:
    """Per document (``rids[i]`` owns passage ``pids[i]``): its row id, score and best passage."""
    if not len(pids):
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    order = np.lexsort((-scores, rids))  # by document, best passage first
    r, s, p = rids[order], scores[order], pids[order]
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    if how == "max":
        values = s[starts]
    else:
        rank = np.arange(len(r)) - np.repeat(starts, np.diff(np.r_[starts, len(r)]))
        values = np.add.reduceat(np.where(rank < top, s, 0), starts)
    return r[starts], values.astype(np.float32), p[starts]
