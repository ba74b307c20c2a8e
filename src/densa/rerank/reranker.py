"""Rerankers: score (query, passage) pairs jointly, for the top of a ranking.

A cross-encoder reads query and passage together, so every query token attends to every
passage token (Nogueira & Cho 2019, "Passage Re-ranking with BERT"): more accurate than a
bi-encoder but one forward pass per pair, hence only for the top candidates. A ColBERT model
reranks too (:class:`ColbertReranker`): MaxSim between the query's and each candidate's token
vectors, the late-interaction middle ground. :func:`load_reranker` picks by the folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from densa.errors import DensaError

__all__ = ["ColbertReranker", "CrossEncoderReranker", "Reranker", "check_cross_encoder", "load_reranker"]


@runtime_checkable
class Reranker(Protocol):
    """``score(pairs) -> scores``: one relevance score per ``(query, passage)`` pair."""

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


def check_cross_encoder(path: Path) -> None:
    """Raise unless ``path`` holds a one-output sequence classifier (a cross-encoder): a
    bi-encoder folder would load with a random scoring head and rerank at random."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise DensaError(f"cross-encoder folder not found or incomplete: {path}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DensaError(f"{config_file}: unreadable ({exc})") from None
    architectures = config.get("architectures") or []
    labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 0) or 0)
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures) or labels not in (0, 1):
        raise DensaError(
            f"{path} is not a cross-encoder (architectures {architectures}): --rerank takes a one-output "
            "sequence classifier, e.g. one trained by `densa train-reranker`; a bi-encoder folder is a "
            "channel (densa add-channel)"
        )


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
        check_cross_encoder(path)
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


class ColbertReranker:
    """MaxSim of each (query, passage) pair with a ColBERT model (any folder
    :class:`~densa.encode.colbert.ColbertEncoder` loads): each query is encoded once, each
    candidate passage once, so reranking the top 100 costs about 100 short forward passes.
    """

    def __init__(self, model: str | Path, *, batch_size: int = 32, device: str | None = None) -> None:
        from densa.encode.colbert import ColbertEncoder

        self.encoder = ColbertEncoder(str(model), batch_size=batch_size, device=device)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        from densa.encode.colbert import maxsim

        if not pairs:
            return []
        queries = list(dict.fromkeys(q for q, _ in pairs))
        passages = list(dict.fromkeys(p for _, p in pairs))
        encoded_queries = self.encoder.encode_queries(queries)
        encoded_passages = self.encoder.encode_documents(passages)
        q_at = {q: i for i, q in enumerate(queries)}
        p_at = {p: i for i, p in enumerate(passages)}
        q_rows, p_rows = encoded_queries.offsets, encoded_passages.offsets
        return [
            maxsim(
                encoded_queries.vectors[q_rows[q_at[q]] : q_rows[q_at[q] + 1]],
                encoded_passages.vectors[p_rows[p_at[p]] : p_rows[p_at[p] + 1]],
            )
            for q, p in pairs
        ]


def load_reranker(
    model: str | Path, *, device: str | None = None, show_progress: bool = False
) -> CrossEncoderReranker | ColbertReranker:
    """The reranker a folder holds: a ColBERT model reranks by MaxSim, anything else must be a
    cross-encoder (checked: a bi-encoder folder is refused)."""
    from densa.encode.colbert import is_colbert_model

    if is_colbert_model(Path(model)):
        return ColbertReranker(model, device=device)
    return CrossEncoderReranker(model, device=device, show_progress=show_progress)
