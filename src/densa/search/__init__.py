"""Search stage: any channels of an index, fused, filtered, reranked."""

from densa.search.config import HYBRID, Mode, SearchConfig, resolve_channels
from densa.search.retriever import Retriever
from densa.search.searcher import Searcher

__all__ = ["HYBRID", "Mode", "Retriever", "SearchConfig", "Searcher", "resolve_channels"]
