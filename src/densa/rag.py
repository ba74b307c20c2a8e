"""Retrieval-augmented generation context: the top passages, cited, inside a token budget.

This is the seeds' ``rag_answer`` without the LLM: densa retrieves and assembles; the
caller sends :attr:`RagContext.prompt` to whatever model it uses::

    context = build_context(index, "what causes a heart attack?", k=5, max_tokens=512)
    answer = my_llm.generate(context.prompt)   # any LLM client
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from densa.types import Hit

__all__ = ["PROMPT_TEMPLATE", "Citation", "RagContext", "assemble_context", "build_context"]

PROMPT_TEMPLATE = """Based on the following context, answer the question.
Cite the passages you use by their number, like [1].

Context:
{context}

Question: {question}

Answer:"""


@dataclass(frozen=True)
class Citation:
    """A passage placed in the context: its number in the context, document id and score."""

    number: int
    doc_id: str
    title: str
    score: float


@dataclass(frozen=True)
class RagContext:
    """The assembled context block, what it cites, and the prompt around it."""

    question: str
    context: str
    citations: tuple[Citation, ...]
    tokens: int
    prompt: str


def assemble_context(
    question: str,
    hits: Sequence[Hit],
    max_tokens: int,
    count_tokens: Callable[[str], int],
    template: str = PROMPT_TEMPLATE,
) -> RagContext:
    """Put hits in rank order into a context of at most ``max_tokens`` tokens.

    Whole passages are added while they fit; a passage that does not fit is skipped (a
    later, shorter one may still fit). If not even the first fits, its beginning is cut to
    the budget, so the context is never empty while there are hits.

    Examples
    --------
    >>> hits = [Hit("d1", 0.9, 1, "Heart", "Myocardial infarction is a heart attack.")]
    >>> ctx = assemble_context("what is an MI?", hits, 100, lambda s: len(s.split()))
    >>> print(ctx.context)
    [1] Heart (d1)
    Myocardial infarction is a heart attack.
    >>> [c.doc_id for c in ctx.citations]
    ['d1']
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    blocks: list[str] = []
    citations: list[Citation] = []
    used = 0
    for hit in hits:
        number = len(blocks) + 1
        header = f"[{number}] {hit.title} ({hit.doc_id})" if hit.title else f"[{number}] ({hit.doc_id})"
        block = f"{header}\n{hit.passage or hit.text}"
        cost = count_tokens(block)
        if used + cost > max_tokens:
            if blocks:
                continue
            block = _cut(block, max_tokens, count_tokens)
            cost = count_tokens(block)
        blocks.append(block)
        citations.append(Citation(number, hit.doc_id, hit.title, hit.score))
        used += cost
    context = "\n\n".join(blocks)
    return RagContext(
        question, context, tuple(citations), used, template.format(context=context, question=question)
    )


def _cut(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> str:
    words = text.split(" ")
    low, high = 0, len(words)
    while low < high:  # the most words that fit
        mid = (low + high + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return " ".join(words[:low])


def build_context(
    index: object,
    question: str,
    k: int = 5,
    max_tokens: int = 512,
    mode: str = "hybrid",
) -> RagContext:
    """Search ``index`` (a :class:`densa.Index`) and assemble the top ``k`` hits, counting
    tokens with the index's own encoder tokenizer."""
    from densa.index.index import Index
    from densa.search.config import SearchConfig
    from densa.search.searcher import Searcher

    if not isinstance(index, Index):
        raise TypeError("build_context needs a densa.Index")
    hits = Searcher(index, SearchConfig(mode=mode)).hits([question], k)[0]
    tokenizer = index.query_encoder.tokenizer

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return assemble_context(question, hits, max_tokens, count)
