"""Split long documents into overlapping passages measured in the encoder's own tokens.

A bi-encoder sees at most its token limit (256 for all-MiniLM-L6-v2); the tail of a longer
document would be lost. Chunking encodes every part, and a document's score becomes the
best passage's score (max-pooling over passages, as in DPR's passage retrieval and the
"bi-encoder glossary" seed), or the sum of its best few.

Sentence-aware: passages end at sentence boundaries where possible; a single sentence
longer than the limit is cut into token windows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from densa.errors import ConfigError

__all__ = ["ChunkConfig", "Chunker", "Span"]

Span = tuple[int, int]
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n\s*\n|\n")


@dataclass(frozen=True)
class ChunkConfig:
    """How to cut documents into passages.

    Parameters
    ----------
    max_tokens
        Passage length limit in the encoder's tokens (without special tokens).
    overlap
        Tokens of the previous passage repeated at the start of the next (whole sentences
        where possible, never more than this).
    """

    max_tokens: int = 200
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ConfigError("chunk max_tokens must be at least 8")
        if not 0 <= self.overlap < self.max_tokens:
            raise ConfigError("chunk overlap must be >= 0 and smaller than max_tokens")


class Chunker:
    """Splits texts into character spans of at most ``max_tokens`` tokens each.

    Parameters
    ----------
    tokenizer
        A Hugging Face fast tokenizer (it must return offset mappings).
    config
        Limits.
    """

    def __init__(self, tokenizer: Any, config: ChunkConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config

    def split(self, texts: Sequence[str]) -> list[list[Span]]:
        """Character spans ``(start, end)`` of each text's passages, in order."""
        encoded = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        return [
            self._split_one(text, offsets)
            for text, offsets in zip(texts, encoded["offset_mapping"], strict=True)
        ]

    def _split_one(self, text: str, offsets: list[tuple[int, int]]) -> list[Span]:
        limit = self.config.max_tokens
        if len(offsets) <= limit:
            return [(0, len(text))]
        units = self._units(text, offsets)
        chunks: list[tuple[int, int]] = []  # token ranges [first, last)
        start = 0
        while start < len(units):
            end = start
            while end < len(units) and units[end][1] - units[start][0] <= limit:
                end += 1
            chunks.append((units[start][0], units[end - 1][1]))
            if end == len(units):
                break
            # step back over whole units that fit in the overlap, but always move forward
            back = end
            while back - 1 > start and units[end - 1][1] - units[back - 1][0] <= self.config.overlap:
                back -= 1
            start = back if back < end else end
        return [(offsets[a][0], offsets[b - 1][1]) for a, b in chunks]

    def _units(self, text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Token ranges of sentences; a sentence over ``max_tokens`` is cut into pieces of
        ``overlap`` tokens (so consecutive windows over it overlap) or of ``max_tokens``."""
        boundaries = [m.end() for m in _SENTENCE_END.finditer(text)]
        starts = [0]
        b = 0
        for i, (char_start, _) in enumerate(offsets):
            while b < len(boundaries) and boundaries[b] <= char_start:
                b += 1
                if i > starts[-1]:
                    starts.append(i)
        starts.append(len(offsets))
        units: list[tuple[int, int]] = []
        limit = self.config.max_tokens
        piece = self.config.overlap or limit
        for a, z in pairwise(starts):
            step = limit if z - a <= limit else piece
            units.extend((w, min(w + step, z)) for w in range(a, z, step))
        return units
