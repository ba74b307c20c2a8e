"""Run as a subprocess by the resume test: build an index slowly (hashing encoder)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from densa.index import Index
from densa.types import Document
from tests.helpers import HashingEncoder


def documents(n: int, delay: float) -> Iterator[Document]:
    for i in range(n):
        if i % 20 == 0:
            time.sleep(delay)
        yield Document(f"doc-{i}", f"document {i} about topic {i % 13} and field {i % 7}")


if __name__ == "__main__":
    path, count, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    encoder = HashingEncoder()
    print("started", flush=True)
    index = Index.build(documents(count, delay), path, encoder=encoder, batch_size=20)
    print(f"encoded {encoder.encoded_documents}", flush=True)
