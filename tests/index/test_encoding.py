"""Batches of passages are encoded in order, huge texts cut before tokenising, and counted."""

from __future__ import annotations

from densa.index.encoding import CHARS_PER_TOKEN, encode_batch
from tests.helpers import HashingEncoder


class _Recording(HashingEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode_documents(self, texts: list[str]) -> object:  # type: ignore[override]
        self.seen += texts
        return super().encode_documents(texts)


def test_huge_texts_are_cut_before_tokenising_and_counted_as_truncated() -> None:
    encoder = _Recording()
    limit = CHARS_PER_TOKEN * encoder.spec.max_length
    huge = "lava " * (limit // 2)  # 2.5 x the character limit
    texts = ["short text", huge, "another one"]
    vectors, truncated = encode_batch(encoder, texts, texts)
    assert truncated == 1
    assert max(len(t) for t in encoder.seen) == limit and len(encoder.seen) == 3
    again, _ = encode_batch(HashingEncoder(), [texts[0], texts[2]], [texts[0], texts[2]])
    assert (vectors[[0, 2]] == again).all()  # order kept
