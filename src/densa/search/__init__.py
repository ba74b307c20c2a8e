"""Search stage: retrievers that turn queries into runs."""

from densa.search.retriever import DenseRetriever, Retriever

__all__ = ["DenseRetriever", "Retriever"]
