"""Pooling of token embeddings into one vector, mapped onto sentence-transformers' module.

=============  ==========================================================
``cls``        the first token's embedding (BERT's [CLS]; DPR)
``mean``       average of the non-padding tokens (SBERT, E5, GTE)
``max``        element-wise maximum over the non-padding tokens
``last-token`` the last non-padding token (decoder LLM encoders, e.g. E5-Mistral)
=============  ==========================================================
"""

from __future__ import annotations

from typing import Any, get_args

from densa.encode.config import Pooling
from densa.errors import DensaError

__all__ = ["pooling_from_st", "pooling_module"]

_TO_ST: dict[str, str] = {"cls": "cls", "mean": "mean", "max": "max", "last-token": "lasttoken"}
_FROM_ST = {v: k for k, v in _TO_ST.items()}


def pooling_module(pooling: Pooling, dim: int) -> Any:
    """A sentence-transformers ``Pooling`` module for ``pooling`` over ``dim``-wide tokens."""
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    if pooling not in get_args(Pooling):
        raise DensaError(f"unknown pooling {pooling!r}; choose one of {get_args(Pooling)}")
    return STPooling(dim, pooling_mode=_TO_ST[pooling])


def pooling_from_st(model: Any) -> Pooling:
    """The pooling of a loaded sentence-transformers model, in densa's vocabulary."""
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    for module in model.modules():  # also inside a Router (separate query/document towers)
        if isinstance(module, STPooling):
            mode = module.pooling_mode
            if isinstance(mode, str) and mode in _FROM_ST:
                return _FROM_ST[mode]  # type: ignore[return-value]
            raise DensaError(f"unsupported pooling mode {mode!r} in the model folder")
    raise DensaError("the model has no pooling module; pass a pooling (cls, mean, max, last-token)")
