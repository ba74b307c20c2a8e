"""Corpus stage: read documents, queries and qrels."""

from densa.corpus.beir import BeirDataset
from densa.corpus.queries import read_qrels, read_queries
from densa.corpus.readers import CorpusFormat, SkipReport, count_records, detect_format, peek, read_corpus

__all__ = [
    "BeirDataset",
    "CorpusFormat",
    "SkipReport",
    "count_records",
    "detect_format",
    "peek",
    "read_corpus",
    "read_qrels",
    "read_queries",
]
