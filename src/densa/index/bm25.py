"""The keyword index: BM25 (Robertson & Zaragoza 2009) on bm25s, kept beside the vectors.

Documents are tokenised as bm25s does (scikit-learn's word pattern, lower-cased), English
stop words removed, and stemmed with Snowball (PyStemmer). Scoring is Lucene's BM25 variant
by default, as in Pyserini/Anserini. Saved as bm25s's own ``.npy``/JSON files (no pickle),
plus the document row id of each BM25 position.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from densa.errors import ConfigError, DensaError

__all__ = ["BM25Config", "BM25Index"]

_RIDS = "rids.npy"


@dataclass(frozen=True)
class BM25Config:
    """BM25 parameters and text analysis.

    Parameters
    ----------
    k1
        Term-frequency saturation.
    b
        Document-length normalisation.
    method
        bm25s scoring variant: ``lucene`` (default), ``robertson`` or ``atire``.
    stemmer
        Snowball stemmer language, or ``None`` to keep words as they are.
    stopwords
        Stop-word list language (``en``), or ``None``.
    """

    k1: float = 1.5
    b: float = 0.75
    method: Literal["lucene", "robertson", "atire"] = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ConfigError("BM25 needs k1 >= 0 and 0 <= b <= 1")
        if self.method not in ("lucene", "robertson", "atire"):
            raise ConfigError(f"unknown BM25 method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25Config:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class BM25Index:
    """BM25 over documents identified by the document store's row ids."""

    def __init__(self, retriever: Any, rids: npt.NDArray[np.int64], config: BM25Config) -> None:
        self._retriever = retriever
        self._rids = rids
        self._position = {int(r): i for i, r in enumerate(rids)}
        self.config = config
        self._stemmer = _stemmer(config)

    def __len__(self) -> int:
        return len(self._rids)

    @classmethod
    def build(cls, rids: Sequence[int], texts: Sequence[str], config: BM25Config) -> BM25Index:
        import bm25s

        if not texts:
            raise DensaError("cannot build BM25 over zero documents")
        tokens = bm25s.tokenize(
            list(texts), stopwords=config.stopwords or [], stemmer=_stemmer(config), show_progress=False
        )
        retriever = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
        retriever.index(tokens, show_progress=False)
        return cls(retriever, np.asarray(rids, dtype=np.int64), config)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(folder))
        np.save(folder / _RIDS, self._rids, allow_pickle=False)
        (folder / "densa_bm25.json").write_text(json.dumps(self.config.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        if not (folder / _RIDS).is_file():
            raise DensaError(f"BM25 index missing in {folder}")
        config = BM25Config.from_dict(json.loads((folder / "densa_bm25.json").read_text(encoding="utf-8")))
        retriever = bm25s.BM25.load(str(folder), allow_pickle=False)
        return cls(retriever, np.load(folder / _RIDS, allow_pickle=False), config)

    def search(
        self, texts: Sequence[str], k: int, allowed: Collection[int] | None = None
    ) -> list[dict[int, float]]:
        """Top-``k`` ``{row id: score}`` per query; documents matching no query term are left out.

        Parameters
        ----------
        allowed
            Only these row ids may be returned (metadata filters); ``None`` allows all.
        """
        import bm25s

        k = min(k, len(self._rids))
        tokens = bm25s.tokenize(
            list(texts),
            stopwords=self.config.stopwords or [],
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self._rids), dtype=np.float32)
            positions = [self._position[r] for r in allowed if r in self._position]
            mask[positions] = 1.0
        docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, weight_mask=mask)
        return [
            {int(self._rids[d]): float(s) for d, s in zip(row_docs, row_scores, strict=True) if s > 0}
            for row_docs, row_scores in zip(docs, scores, strict=True)
        ]


def _stemmer(config: BM25Config) -> Any:
    if config.stemmer is None:
        return None
    import Stemmer

    return Stemmer.Stemmer(config.stemmer)
