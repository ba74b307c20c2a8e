"""Fusion stage: combine the rankings of several channels (or runs) into one."""

from densa.fuse.fusion import FusionConfig, fuse, fuse_arrays, fuse_runs, parse_weights
from densa.fuse.rrf import reciprocal_rank_fusion
from densa.fuse.weighted import normalize_scores, weighted_fusion

__all__ = [
    "FusionConfig",
    "fuse",
    "fuse_arrays",
    "fuse_runs",
    "normalize_scores",
    "parse_weights",
    "reciprocal_rank_fusion",
    "weighted_fusion",
]
