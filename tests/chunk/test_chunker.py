from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from transformers import AutoTokenizer

from densa.chunk import ChunkConfig, Chunker
from densa.encode import DEFAULT_MODEL, resolve_model_path
from densa.errors import ConfigError


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(str(resolve_model_path(DEFAULT_MODEL)))


def _tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


SENTENCES = " ".join(f"Sentence {i} is about topic {i} in detail." for i in range(20))


def test_short_text_is_one_passage(tokenizer: Any) -> None:
    assert Chunker(tokenizer, ChunkConfig(64, 8)).split(["a short text"]) == [[(0, 12)]]


def test_passages_respect_the_limit_end_at_sentences_and_cover_everything(tokenizer: Any) -> None:
    spans = Chunker(tokenizer, ChunkConfig(max_tokens=40, overlap=12)).split([SENTENCES])[0]
    assert len(spans) > 3
    assert spans[0][0] == 0 and spans[-1][1] == len(SENTENCES)
    for start, end in spans:
        assert _tokens(tokenizer, SENTENCES[start:end]) <= 40
        assert SENTENCES[start:end].endswith(".")
        assert SENTENCES[start:end].startswith("Sentence")
    for (_, prev_end), (next_start, _) in pairwise(spans):
        assert next_start <= prev_end + 1  # no gap between passages


def test_overlap_repeats_whole_sentences_within_budget(tokenizer: Any) -> None:
    spans = Chunker(tokenizer, ChunkConfig(max_tokens=40, overlap=12)).split([SENTENCES])[0]
    first, second = (SENTENCES[a:b] for a, b in spans[:2])
    last_sentence = first[first.rfind("Sentence") :]
    assert second.startswith(last_sentence)
    assert _tokens(tokenizer, last_sentence) <= 12
    no_overlap = Chunker(tokenizer, ChunkConfig(max_tokens=40, overlap=0)).split([SENTENCES])[0]
    assert all(b[0] > a[1] for a, b in pairwise(no_overlap))


def test_a_sentence_longer_than_the_limit_is_cut_into_overlapping_windows(tokenizer: Any) -> None:
    text = "word " * 100
    spans = Chunker(tokenizer, ChunkConfig(max_tokens=40, overlap=10)).split([text])[0]
    assert all(_tokens(tokenizer, text[a:b]) <= 40 for a, b in spans)
    assert all(b[0] < a[1] for a, b in pairwise(spans))
    assert spans[-1][1] == len(text.rstrip())


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        ChunkConfig(max_tokens=4)
    with pytest.raises(ConfigError):
        ChunkConfig(max_tokens=32, overlap=32)
