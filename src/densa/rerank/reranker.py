"""Rerankers: score (query, passage) pairs jointly, for the top of a ranking.

A cross-encoder reads query and passage together, so every query token attends to every
passage token (Nogueira & Cho 2019, "Passage Re-ranking with BERT"): more accurate than a
bi-encoder but one forward pass per pair, hence only for the top candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from densa.errors import DensaError

__all__ = ["CrossEncoderReranker", "Reranker"]


@runtime_checkable
class Reranker(Protocol):
    """``score(pairs) -> scores``: one relevance score per ``(query, passage)`` pair."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


class CrossEncoderReranker:
    """Any sentence-transformers ``CrossEncoder`` folder (one output: the relevance score).

    Parameters
    ----------
    model
        A local cross-encoder folder (e.g. one trained by ``densa train-reranker``).
    batch_size
        Pairs per forward pass.
    device
        ``cpu`` / ``cuda``; ``None`` picks CUDA when present.
    show_progress
        Show a progress bar over the pairs.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        batch_size: int = 32,
        device: str | None = None,
        show_progress: bool = False,
    ) -> None:
        from sentence_transformers import CrossEncoder

        path = Path(model)
        if not (path / "config.json").is_file():
            raise DensaError(f"cross-encoder folder not found or incomplete: {model}")
        self.model = CrossEncoder(str(path), device=device, local_files_only=True)
        self.batch_size = batch_size
        self.show_progress = show_progress

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        scores = self.model.predict(
            [list(p) for p in pairs],
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            convert_to_numpy=True,
        )
        return [float(s) for s in scores]
