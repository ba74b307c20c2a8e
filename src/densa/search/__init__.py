"""Search stage: dense, BM25 and hybrid retrieval over an index."""

from densa.search.retriever import Retriever
from densa.search.searcher import Mode, SearchConfig, Searcher

__all__ = ["Mode", "Retriever", "SearchConfig", "Searcher"]
