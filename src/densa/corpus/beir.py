"""A BEIR-format dataset folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from densa.corpus.queries import read_qrels, read_queries
from densa.errors import InputError
from densa.types import Qrels, Query

__all__ = ["BeirDataset"]


@dataclass(frozen=True)
class BeirDataset:
    """Paths and loaders of one BEIR dataset folder."""

    root: Path

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise InputError(str(self.root), None, "dataset folder not found")
        for name in ("corpus.jsonl", "queries.jsonl"):
            if not (self.root / name).is_file():
                raise InputError(str(self.root / name), None, "missing from the BEIR dataset folder")

    @property
    def corpus_path(self) -> Path:
        return self.root / "corpus.jsonl"

    def splits(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "qrels").glob("*.tsv"))

    def qrels(self, split: str = "test") -> Qrels:
        path = self.root / "qrels" / f"{split}.tsv"
        if not path.is_file():
            raise InputError(str(path), None, f"no qrels for split {split!r}; found {self.splits()}")
        return read_qrels(path)

    def queries(self, split: str = "test") -> list[Query]:
        """The queries judged in ``split`` (BEIR evaluates only those)."""
        judged = self.qrels(split).judgements
        return [q for q in read_queries(self.root / "queries.jsonl") if q.id in judged]
