"""The retriever protocol: anything that turns queries into a :class:`~densa.types.Run`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from densa.types import Query, Run

__all__ = ["Retriever"]


@runtime_checkable
class Retriever(Protocol):
    """``search(queries, k) -> Run``: the top ``k`` documents of every query."""

    def search(self, queries: Sequence[Query], k: int) -> Run: ...
