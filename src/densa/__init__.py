"""densa: dense passage retrieval.

>>> import densa
>>> densa.Run({"q": {"d": 1.0}}).ranked("q")[0].doc_id
'd'
"""

from densa._version import __version__
from densa.chunk import ChunkConfig
from densa.corpus import BeirDataset, SkipReport, read_corpus, read_qrels, read_queries
from densa.encode import DEFAULT_MODEL, Encoder, EncoderConfig, SentenceTransformerEncoder
from densa.errors import DensaError, IndexMismatchError, InputError
from densa.evaluate import EvalResult, evaluate, evaluate_dataset
from densa.fuse import FusionConfig, fuse_runs
from densa.index import BM25Config, Index, VectorIndexConfig
from densa.rerank import CrossEncoderReranker, Reranker
from densa.search import Retriever, SearchConfig, Searcher
from densa.types import Document, Hit, Qrels, Query, Run

__all__ = [
    "DEFAULT_MODEL",
    "BM25Config",
    "BeirDataset",
    "ChunkConfig",
    "CrossEncoderReranker",
    "DensaError",
    "Document",
    "Encoder",
    "EncoderConfig",
    "EvalResult",
    "FusionConfig",
    "Hit",
    "Index",
    "IndexMismatchError",
    "InputError",
    "Qrels",
    "Query",
    "Reranker",
    "Retriever",
    "Run",
    "SearchConfig",
    "Searcher",
    "SentenceTransformerEncoder",
    "SkipReport",
    "VectorIndexConfig",
    "__version__",
    "evaluate",
    "evaluate_dataset",
    "fuse_runs",
    "read_corpus",
    "read_qrels",
    "read_queries",
]
