"""Index stage: document store, vectors, BM25 and manifest in one folder."""

from densa.index.bm25 import BM25Config, BM25Index
from densa.index.generation import BuildStats
from densa.index.index import Index
from densa.index.manifest import Manifest
from densa.index.store import DocumentStore, Filter
from densa.index.vectors import IndexKind, VectorIndex, VectorIndexConfig

__all__ = [
    "BM25Config",
    "BM25Index",
    "BuildStats",
    "DocumentStore",
    "Filter",
    "Index",
    "IndexKind",
    "Manifest",
    "VectorIndex",
    "VectorIndexConfig",
]
