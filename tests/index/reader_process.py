"""Run as a subprocess by the lease test: open an index, wait, then search the snapshot it opened."""

from __future__ import annotations

import sys

from densa.index import Index
from tests.helpers import HashingEncoder, search

if __name__ == "__main__":
    index = Index.open(sys.argv[1], encoder=HashingEncoder())
    print("open", len(index), flush=True)
    for line in sys.stdin:
        if line.strip() == "search":
            hits = search(index, ["shark attack surfer"], 1, mode="bm25")[0]
            print("found", hits[0].doc_id, flush=True)
    index.close()
