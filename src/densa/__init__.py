"""densa: dense passage retrieval.

>>> import densa
>>> densa.Run({"q": {"d": 1.0}}).ranked("q")[0].doc_id
'd'
"""

from densa._version import __version__
from densa.corpus import BeirDataset, SkipReport, read_corpus, read_qrels, read_queries
from densa.encode import DEFAULT_MODEL, Encoder, EncoderConfig, SentenceTransformerEncoder
from densa.errors import DensaError, IndexMismatchError, InputError
from densa.evaluate import EvalResult, evaluate, evaluate_dataset
from densa.index import Index, VectorIndexConfig
from densa.search import DenseRetriever, Retriever
from densa.types import Document, Hit, Qrels, Query, Run

__all__ = [
    "DEFAULT_MODEL",
    "BeirDataset",
    "DensaError",
    "DenseRetriever",
    "Document",
    "Encoder",
    "EncoderConfig",
    "EvalResult",
    "Hit",
    "Index",
    "IndexMismatchError",
    "InputError",
    "Qrels",
    "Query",
    "Retriever",
    "Run",
    "SentenceTransformerEncoder",
    "SkipReport",
    "VectorIndexConfig",
    "__version__",
    "evaluate",
    "evaluate_dataset",
    "read_corpus",
    "read_qrels",
    "read_queries",
]
