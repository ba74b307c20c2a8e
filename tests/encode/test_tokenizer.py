"""The torch-free tokenizer answers as transformers' fast tokenizer does, for densa's calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densa.encode.tokenizer import FastTokenizer

TEXTS = [
    "A heart attack blocks a coronary artery.",
    "Short.",
    "Ünïcode and punctuation — «quotes», émigrés; and a long tail " * 20,
]


@pytest.fixture(scope="module")
def both(minilm_path: Path) -> tuple[object, FastTokenizer]:
    from transformers import AutoTokenizer

    fast = FastTokenizer.load(minilm_path)
    assert fast is not None
    return AutoTokenizer.from_pretrained(str(minilm_path)), fast


def test_padded_truncated_batches_are_equal(both: tuple[object, FastTokenizer]) -> None:
    reference, fast = both
    want = reference(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="np")  # type: ignore[operator]
    got = fast(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="np")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[key], want[key])


def test_lengths_ids_and_offsets_are_equal(both: tuple[object, FastTokenizer]) -> None:
    reference, fast = both
    lengths = {"truncation": True, "max_length": 257, "return_length": True}
    assert fast(TEXTS, **lengths)["length"] == reference(TEXTS, **lengths)["length"]  # type: ignore[operator]
    plain = reference(TEXTS[0], add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    assert fast(TEXTS[0], add_special_tokens=False)["input_ids"] == plain
    options = {"add_special_tokens": False, "return_offsets_mapping": True}
    want = reference(TEXTS, **options)  # type: ignore[operator]
    got = fast(TEXTS, **options)
    assert got["input_ids"] == want["input_ids"]
    assert [[tuple(o) for o in row] for row in got["offset_mapping"]] == [
        [tuple(o) for o in row] for row in want["offset_mapping"]
    ]
