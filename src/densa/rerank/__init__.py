"""Rerank stage: cross-encoders over the top of a ranking."""

from densa.rerank.reranker import CrossEncoderReranker, Reranker

__all__ = ["CrossEncoderReranker", "Reranker"]
