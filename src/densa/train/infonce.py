"""InfoNCE with in-batch negatives plus hard negatives (van den Oord et al. 2018; DPR,
Karpukhin et al. 2020).

For a batch of ``B`` questions, each with one positive and ``h`` hard negatives, every
question is scored against all ``B (1 + h)`` passages of the batch: its own positive, the
other questions' positives (in-batch negatives) and every hard negative. The loss is
the cross-entropy of picking the right positive::

    logits = cos(q_i, p_j) / temperature            shape (B, B (1 + h))
    loss   = mean_i  -log softmax(logits_i)[i]

Passages are laid out column by column: ``[positives (B), hard negatives 1 (B), ...]``,
so question ``i``'s positive sits at column ``i``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["InfoNCELoss", "infonce_logits"]


def infonce_logits(queries: Tensor, passages: Tensor, temperature: float) -> Tensor:
    """Cosine similarities over the temperature: ``(B, d) x (P, d) -> (B, P)``."""
    return F.normalize(queries, dim=-1) @ F.normalize(passages, dim=-1).T / temperature


class InfoNCELoss(nn.Module):
    """sentence-transformers-compatible InfoNCE loss.

    Parameters
    ----------
    model
        The ``SentenceTransformer`` being trained.
    temperature
        Softmax temperature ``τ`` (sentence-transformers' ``scale`` is ``1 / τ``).
    """

    def __init__(self, model: Any, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.model = model
        self.temperature = temperature

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        embeddings = [self.model(features)["sentence_embedding"] for features in sentence_features]
        queries, passages = embeddings[0], torch.cat(embeddings[1:])
        logits = infonce_logits(queries, passages, self.temperature)
        target = torch.arange(len(queries), device=logits.device)
        return F.cross_entropy(logits, target)

    @property
    def citation(self) -> str:
        return "Karpukhin et al. 2020, Dense Passage Retrieval for Open-Domain Question Answering"
