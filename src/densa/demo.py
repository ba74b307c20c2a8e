"""The bundled sample dataset and the demo that indexes and searches it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from densa.corpus.readers import read_corpus
from densa.index.index import Index
from densa.search.config import SearchConfig
from densa.search.searcher import Searcher
from densa.types import Hit

__all__ = ["DemoResult", "run_demo", "sample_dataset_path", "shared_words"]

_WORD = re.compile(r"[a-z0-9]+")


def sample_dataset_path() -> Path:
    """The BEIR-format sample dataset shipped inside the package."""
    return Path(str(files("densa") / "samples"))


def shared_words(query: str, text: str) -> set[str]:
    """Lower-cased words of ``query`` that also occur in ``text``.

    Examples
    --------
    >>> sorted(shared_words("heart attack", "A shark attack at sea"))
    ['attack']
    """
    return set(_WORD.findall(query.lower())) & set(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class DemoResult:
    index_path: Path
    query: str
    bm25: list[Hit]
    dense: list[Hit]


def run_demo(index_path: Path, query: str = "heart attack", k: int = 5) -> DemoResult:
    """Index the sample corpus at ``index_path`` (reusing it if present) and search ``query``."""
    if (index_path / "manifest.json").exists():
        index = Index.open(index_path)
    else:
        index = Index.build(read_corpus(sample_dataset_path() / "corpus.jsonl"), index_path, progress=True)
    try:
        bm25 = Searcher(index, SearchConfig(mode="bm25")).hits([query], k)[0]
        dense = Searcher(index, SearchConfig(mode="dense")).hits([query], k)[0]
        return DemoResult(index_path, query, bm25, dense)
    finally:
        index.close()
