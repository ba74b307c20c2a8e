"""The training curve: loss per logged step and dev nDCG@10, saved as a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_training"]


def plot_training(
    history: Sequence[dict[str, Any]], path: Path, metric: str = "eval_dev_cosine_ndcg@10"
) -> None:
    """Plot ``loss`` and ``metric`` against the step from a trainer's ``log_history``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    losses = [(e["step"], e["loss"]) for e in history if "loss" in e and "step" in e]
    scores = [(e["step"], e[metric]) for e in history if metric in e and "step" in e]
    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    if losses:
        axis.plot(*zip(*losses, strict=True), color="tab:blue", label="training loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss", color="tab:blue")
    if scores:
        other = axis.twinx()
        other.plot(*zip(*scores, strict=True), color="tab:orange", marker="o", label="dev nDCG@10")
        other.set_ylabel("dev nDCG@10", color="tab:orange")
    axis.set_title("densa training")
    figure.tight_layout()
    figure.savefig(str(path))
