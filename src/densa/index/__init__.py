"""Index stage: a document store and any number of retrieval channels, in immutable segments."""

from densa.index.channels import registry
from densa.index.channels.base import Channel, ChannelKind, UnitScores
from densa.index.channels.bm25 import BM25Config
from densa.index.channels.dense import DenseChannel
from densa.index.index import DEFAULT_CHANNELS, BuildStats, Index
from densa.index.manifest import ChannelRecord, Manifest
from densa.index.merge import MergePolicy
from densa.index.snapshot import Snapshot
from densa.index.store import Filter, parse_filter
from densa.index.vectors import IndexKind, VectorIndex, VectorIndexConfig, set_search_threads

__all__ = [
    "DEFAULT_CHANNELS",
    "BM25Config",
    "BuildStats",
    "Channel",
    "ChannelKind",
    "ChannelRecord",
    "DenseChannel",
    "Filter",
    "Index",
    "IndexKind",
    "Manifest",
    "MergePolicy",
    "Snapshot",
    "UnitScores",
    "VectorIndex",
    "VectorIndexConfig",
    "parse_filter",
    "registry",
    "set_search_threads",
]
