"""Pooling checked on a hand-computed example (2 texts, 3 token slots, 2 dims)."""

from __future__ import annotations

import pytest
import torch

from densa.encode.pooling import pooling_module

TOKENS = torch.tensor(
    [
        [[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]],  # third slot is padding
        [[0.0, 1.0], [2.0, 5.0], [4.0, -3.0]],
    ]
)
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])
EXPECTED = {
    "cls": [[1.0, 2.0], [0.0, 1.0]],
    "mean": [[2.0, -1.0], [2.0, 1.0]],
    "max": [[3.0, 2.0], [4.0, 5.0]],
    "last-token": [[3.0, -4.0], [4.0, -3.0]],
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_pooling_matches_hand_computed_values(mode: str) -> None:
    module = pooling_module(mode, 2)  # type: ignore[arg-type]
    out = module({"token_embeddings": TOKENS, "attention_mask": MASK})["sentence_embedding"]
    assert out.tolist() == EXPECTED[mode]
