"""Fusion stage: combine dense and keyword rankings."""

from densa.fuse.fusion import FusionConfig, fuse, fuse_runs
from densa.fuse.rrf import reciprocal_rank_fusion
from densa.fuse.weighted import normalize_scores, weighted_fusion

__all__ = [
    "FusionConfig",
    "fuse",
    "fuse_runs",
    "normalize_scores",
    "reciprocal_rank_fusion",
    "weighted_fusion",
]
