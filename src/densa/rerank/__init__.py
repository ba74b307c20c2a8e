"""Rerank stage: cross-encoders (or ColBERT's MaxSim) over the top of a ranking."""

from densa.rerank.reranker import ColbertReranker, CrossEncoderReranker, Reranker, load_reranker

__all__ = ["ColbertReranker", "CrossEncoderReranker", "Reranker", "load_reranker"]
