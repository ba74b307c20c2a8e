"""Fusion configuration; fusion of a query's channel rankings, and of whole runs (``densa fuse``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from densa.errors import ConfigError
from densa.fuse.arrays import Ranking, TieBreak, decode, encode_keys
from densa.fuse.rrf import rrf_arrays
from densa.fuse.weighted import Normalization, weighted_arrays
from densa.types import K, Run

__all__ = ["FusionConfig", "fuse", "fuse_arrays", "fuse_runs", "parse_weights"]


@dataclass(frozen=True)
class FusionConfig:
    """How to fuse rankings.

    The default, ``auto``, is weighted fusion whose weights and normalisation are measured on
    the index's own corpus without labels (:mod:`densa.search.calibrate`: pseudo-queries cut
    from its documents); where there is no index to measure (``densa fuse`` of run files) it
    is weighted fusion with equal weights and z-scores, which scored best of 40 fixed
    candidates on SciFact's *train* queries (``bench/tune_hybrid.py``). RRF's constant stays at
    the paper's 60.

    Parameters
    ----------
    method
        ``auto`` (measured weights), ``rrf`` (reciprocal rank fusion) or ``weighted``
        (normalised score sum).
    rrf_k
        RRF's rank constant.
    weights
        Per ranking: ``{channel name: weight}``, or a tuple in the order of the rankings (the
        search's channels, or the runs of ``densa fuse``); ``None``: measured (``auto``) or
        equal weights summing to 1. Given weights are used as they are by every method.
    normalization
        Score normalisation of ``weighted`` and ``auto``: ``minmax`` or ``zscore``; ``None``:
        z-scores (``weighted``) or the measured choice (``auto``).
    """

    method: Literal["auto", "rrf", "weighted"] = "auto"
    rrf_k: float = 60.0
    weights: Mapping[str, float] | tuple[float, ...] | None = None
    normalization: Normalization | None = None

    def __post_init__(self) -> None:
        if self.method not in ("auto", "rrf", "weighted"):
            raise ConfigError(f"fusion method must be 'auto', 'rrf' or 'weighted', got {self.method!r}")
        if self.normalization not in (None, "minmax", "zscore"):
            raise ConfigError(f"normalisation must be 'minmax' or 'zscore', got {self.normalization!r}")
        values = self.weights.values() if isinstance(self.weights, Mapping) else (self.weights or ())
        if self.rrf_k <= 0 or any(w < 0 for w in values):
            raise ConfigError("rrf_k must be positive and weights non-negative")

    def weights_for(self, names: Sequence[str]) -> list[float]:
        """One weight per ranking, for rankings named ``names`` (in order)."""
        if self.weights is None:
            return [1.0 / len(names)] * len(names)
        if isinstance(self.weights, Mapping):
            missing = [n for n in names if n not in self.weights]
            if missing:
                raise ConfigError(
                    f"no fusion weight for {', '.join(missing)} (weights: {dict(self.weights)})"
                )
            return [float(self.weights[n]) for n in names]
        if len(self.weights) != len(names):
            raise ConfigError(
                f"{len(self.weights)} fusion weights for {len(names)} rankings ({', '.join(names)})"
            )
        return [float(w) for w in self.weights]


def parse_weights(text: str) -> dict[str, float] | tuple[float, ...]:
    """``"dense=0.7,bm25=0.3"`` -> by name; ``"0.7,0.3"`` -> in order.

    Examples
    --------
    >>> parse_weights("dense=0.7,bm25=0.3"), parse_weights("0.5, 0.5")
    ({'dense': 0.7, 'bm25': 0.3}, (0.5, 0.5))
    """
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if parts and all("=" in p for p in parts):
            return {name.strip(): float(value) for name, value in (p.split("=", 1) for p in parts)}
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"weights {text!r}: give name=weight pairs (dense=0.7,bm25=0.3) or numbers (0.7,0.3)"
        ) from None


def fuse_arrays(
    rankings: Sequence[Ranking], names: Sequence[str], config: FusionConfig, ties: TieBreak
) -> Ranking:
    """Fuse one query's rankings ``(ids, scores)``, named ``names``, as ``config`` says
    (``auto`` without measured weights fuses as ``weighted``: equal weights, z-scores)."""
    weights = config.weights_for(names)
    if config.method == "rrf":
        return rrf_arrays(rankings, config.rrf_k, weights, ties)
    return weighted_arrays(rankings, weights, config.normalization or "zscore")


def fuse(
    rankings: Sequence[Mapping[K, float]], config: FusionConfig, names: Sequence[str] | None = None
) -> dict[K, float]:
    """Fuse one query's ``{key: score}`` rankings (named ``names``, default ``1, 2, ...``)."""
    keys, arrays = encode_keys(rankings)
    labels = list(names) if names is not None else [str(i + 1) for i in range(len(rankings))]
    return decode(keys, fuse_arrays(arrays, labels, config, "id"))


def fuse_runs(runs: Sequence[Run], config: FusionConfig, k: int | None = None) -> Run:
    """Fuse runs query by query (the union of their queries), keeping the top ``k`` per query;
    weights by name refer to the runs' names."""
    if len(runs) < 2:
        raise ConfigError("fusion needs at least two runs")
    names = [run.name for run in runs]
    qids = sorted({q for run in runs for q in run.scores})
    fused = Run(
        {q: fuse([run.scores.get(q, {}) for run in runs], config, names) for q in qids},
        name=f"densa-{config.method}",
    )
    return fused.top(k) if k is not None else fused
