"""Fusion methods on hand-made rankings, against values computed from the definitions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from densa.cli import app
from densa.errors import ConfigError
from densa.fuse import (
    FusionConfig,
    fuse,
    fuse_runs,
    normalize_scores,
    reciprocal_rank_fusion,
    weighted_fusion,
)
from densa.types import Run

DENSE = {"a": 0.9, "b": 0.8, "c": 0.1}
BM25 = {"c": 12.0, "d": 7.0, "a": 1.0}


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([DENSE, BM25], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)


def test_rrf_weights_and_constant() -> None:
    fused = reciprocal_rank_fusion([DENSE, BM25], k=1, weights=[2.0, 0.5])
    assert fused["a"] == pytest.approx(2 / 2 + 0.5 / 4)
    assert fused["d"] == pytest.approx(0.5 / 3)


def test_rrf_ties_rank_by_id_descending() -> None:
    fused = reciprocal_rank_fusion([{"x": 1.0, "y": 1.0}], k=60)
    assert fused["y"] == pytest.approx(1 / 61) and fused["x"] == pytest.approx(1 / 62)


def test_minmax_and_zscore_normalisation() -> None:
    assert normalize_scores(DENSE, "minmax") == pytest.approx({"a": 1.0, "b": 0.875, "c": 0.0})
    mean = (0.9 + 0.8 + 0.1) / 3
    std = math.sqrt(((0.9 - mean) ** 2 + (0.8 - mean) ** 2 + (0.1 - mean) ** 2) / 3)
    assert normalize_scores(DENSE, "zscore")["a"] == pytest.approx((0.9 - mean) / std)
    assert normalize_scores({"only": 3.0}, "minmax") == {"only": 1.0}


def test_weighted_minmax_missing_documents_count_as_the_floor() -> None:
    fused = weighted_fusion([DENSE, BM25], weights=[0.7, 0.3], normalization="minmax")
    bm25_norm = {"c": 1.0, "d": 6 / 11, "a": 0.0}
    assert fused["a"] == pytest.approx(0.7 * 1.0 + 0.3 * bm25_norm["a"])
    assert fused["b"] == pytest.approx(0.7 * 0.875 + 0.3 * 0.0)  # not retrieved by BM25
    assert fused["c"] == pytest.approx(0.7 * 0.0 + 0.3 * 1.0)
    assert fused["d"] == pytest.approx(0.7 * 0.0 + 0.3 * bm25_norm["d"])


def test_weighted_zscore_floor_is_the_lowest_z() -> None:
    fused = weighted_fusion([DENSE, BM25], weights=[1.0, 1.0], normalization="zscore")
    z_dense = normalize_scores(DENSE, "zscore")
    z_bm25 = normalize_scores(BM25, "zscore")
    assert fused["d"] == pytest.approx(min(z_dense.values()) + z_bm25["d"])


def test_fuse_dispatches_on_the_config() -> None:
    assert fuse([DENSE, BM25], FusionConfig()) == weighted_fusion([DENSE, BM25], [0.5, 0.5], "zscore")
    config = FusionConfig(method="rrf", weights=(1.0, 1.0))
    assert fuse([DENSE, BM25], config) == reciprocal_rank_fusion([DENSE, BM25], 60)
    with pytest.raises(ConfigError):
        FusionConfig(method="borda")  # type: ignore[arg-type]


def test_fuse_runs_covers_the_union_of_queries_and_cuts_to_k() -> None:
    rrf = FusionConfig(method="rrf", weights=(1.0, 1.0))
    fused = fuse_runs([Run({"q1": DENSE}), Run({"q1": BM25, "q2": {"z": 1.0}})], rrf, k=2)
    assert [h.doc_id for h in fused.ranked("q1")] == ["c", "a"]
    assert fused.to_beir()["q2"] == {"z": pytest.approx(1 / 61)}


def test_fuse_command_writes_a_run(tmp_path: Path) -> None:
    Run({"q1": DENSE}).write_trec(tmp_path / "a.trec")
    Run({"q1": BM25}).write_trec(tmp_path / "b.trec")
    out = tmp_path / "c.trec"
    args = [
        "fuse",
        str(tmp_path / "a.trec"),
        str(tmp_path / "b.trec"),
        "-o",
        str(out),
        "--fusion",
        "weighted",
    ]
    result = CliRunner().invoke(app, [*args, "--weights", "0.7,0.3"])
    assert result.exit_code == 0, result.output
    expected = weighted_fusion([DENSE, BM25], [0.7, 0.3], "zscore")  # the default normalisation
    assert Run.read_trec(out).to_beir()["q1"] == pytest.approx(expected)
