"""Training data in DPR's format (Karpukhin et al. 2020).

One example per question::

    {"question": "...", "answers": [],
     "positive_ctxs": [{"title": "...", "text": "...", "passage_id": "...", "score": 12.3}],
     "negative_ctxs": [...], "hard_negative_ctxs": [...]}

``score`` (optional, as in DPR's own files) is the score of the ranking that retrieved the
passage; ``densa mine-negatives`` writes it, and ``densa train-reranker --loss distill``
learns from it (the ranking is the teacher).

densa writes one example per line (JSONL) and reads both JSONL and DPR's original files
(one JSON array), so DPR's own training data can be used as is.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densa.errors import InputError
from densa.types import Document

__all__ = ["Passage", "TrainingExample", "read_dpr", "split_dev", "write_dpr"]


@dataclass(frozen=True)
class Passage:
    """A passage in a training example."""

    text: str
    title: str = ""
    id: str = ""
    score: float | None = None

    @property
    def full_text(self) -> str:
        return f"{self.title} {self.text}".strip() if self.title else self.text

    @classmethod
    def of(cls, doc: Document, score: float | None = None) -> Passage:
        """A corpus document as a training passage (its id kept, with its retrieval score)."""
        return cls(doc.text, doc.title, doc.id, score)

    def to_dpr(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "text": self.text, "passage_id": self.id}
        if self.score is not None:
            out["score"] = self.score
        return out


@dataclass(frozen=True)
class TrainingExample:
    """A question with relevant passages and (hard) negatives."""

    question: str
    positives: tuple[Passage, ...]
    hard_negatives: tuple[Passage, ...] = ()
    negatives: tuple[Passage, ...] = ()
    id: str = ""
    answers: tuple[str, ...] = field(default=())

    def to_dpr(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "positive_ctxs": [p.to_dpr() for p in self.positives],
            "negative_ctxs": [p.to_dpr() for p in self.negatives],
            "hard_negative_ctxs": [p.to_dpr() for p in self.hard_negatives],
        }


def _finite(value: Any) -> float | None:
    """``value`` as a finite float (DPR writes scores as strings), or ``None`` if it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _passages(value: Any, source: str, line: int, key: str) -> tuple[Passage, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError(source, line, f"{key!r} must be a list")
    out = []
    for ctx in value:
        if not isinstance(ctx, dict) or not isinstance(ctx.get("text"), str) or not ctx["text"].strip():
            raise InputError(source, line, f"every entry of {key!r} needs a non-empty 'text'")
        pid = ctx.get("passage_id", ctx.get("psg_id", ctx.get("id", "")))
        score = ctx.get("score")
        if score is not None:
            score = _finite(score)
            if score is None:
                raise InputError(source, line, f"a 'score' in {key!r} must be a finite number")
        out.append(Passage(ctx["text"], str(ctx.get("title") or ""), str(pid), score))
    return tuple(out)


def _example(obj: Any, source: str, line: int) -> TrainingExample:
    if not isinstance(obj, dict):
        raise InputError(source, line, "expected a JSON object")
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InputError(source, line, "missing 'question'")
    positives = _passages(obj.get("positive_ctxs"), source, line, "positive_ctxs")
    if not positives:
        raise InputError(source, line, "no 'positive_ctxs'")
    return TrainingExample(
        question=question,
        positives=positives,
        hard_negatives=_passages(obj.get("hard_negative_ctxs"), source, line, "hard_negative_ctxs"),
        negatives=_passages(obj.get("negative_ctxs"), source, line, "negative_ctxs"),
        id=str(obj.get("id", obj.get("qid", ""))),
        answers=tuple(str(a) for a in obj.get("answers") or ()),
    )


def read_dpr(path: str | Path) -> list[TrainingExample]:
    """Read DPR training data: JSONL (one example a line) or one JSON array (DPR's files)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), None, "training data not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), exc.lineno, f"malformed JSON ({exc.msg})") from None
        examples = [_example(obj, str(path), i) for i, obj in enumerate(items, start=1)]
    else:
        examples = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(str(path), lineno, f"malformed JSON ({exc.msg})") from None
            examples.append(_example(obj, str(path), lineno))
    if not examples:
        raise InputError(str(path), None, "no training examples")
    return examples


def write_dpr(examples: Iterable[TrainingExample], path: str | Path) -> int:
    """Write examples as DPR JSONL (to a temporary name, then renamed); returns the count."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example.to_dpr(), ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def split_dev(
    examples: Sequence[TrainingExample], fraction: float, seed: int = 42
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """Carve a dev set out of the training examples (same seed, same split).

    Examples
    --------
    >>> ex = [TrainingExample(f"q{i}", (Passage("p"),)) for i in range(10)]
    >>> train, dev = split_dev(ex, 0.2)
    >>> len(train), len(dev)
    (8, 2)
    """
    if not 0 <= fraction < 1:
        raise ValueError("dev fraction must be in [0, 1)")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_dev = round(len(examples) * fraction)
    dev_ids = set(order[:n_dev])
    return (
        [e for i, e in enumerate(examples) if i not in dev_ids],
        [e for i, e in enumerate(examples) if i in dev_ids],
    )
