"""Index stage: document store, vector index and manifest in one folder."""

from densa.index.index import BuildStats, Index
from densa.index.manifest import Manifest
from densa.index.store import DocumentStore
from densa.index.vectors import IndexKind, VectorIndex, VectorIndexConfig

__all__ = [
    "BuildStats",
    "DocumentStore",
    "Index",
    "IndexKind",
    "Manifest",
    "VectorIndex",
    "VectorIndexConfig",
]
