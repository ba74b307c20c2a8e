"""Run as a subprocess by the kill test: add documents slowly to an index, then merge its
segments into one (``optimize``), then exit."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from densa.index import Index
from densa.types import Document
from tests.helpers import HashingEncoder


def slow_documents(n: int) -> Iterator[Document]:
    for i in range(n):
        if i % 10 == 0:
            time.sleep(0.02)
        yield Document(f"new-{i}", f"added document number {i} about volcanoes and bread")


if __name__ == "__main__":
    path, count = sys.argv[1], int(sys.argv[2])
    print("started", flush=True)
    index = Index.open(path, encoder=HashingEncoder()).add(slow_documents(count), batch_size=10)
    print("added", flush=True)
    index.optimize()
    print("done", flush=True)
