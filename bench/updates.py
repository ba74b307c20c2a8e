"""What an update costs: adding 1,000 pre-encoded documents and deleting 1,000, at 10k, 100k and 1M
passages, against densa before segments in the same run.

Documents and vectors are those of ``bench/scale_1m.py`` (real MiniLM vectors grown by mixing
and noise); document ``p{i}``'s text starts with ``[i] key{i}x``, a token no other document
has. Per
size n, an index of n documents (a flat ``dense`` channel and ``bm25``) is built from the
precomputed vectors, then ``--repeats`` times:

* **add** 1,000 new documents (vectors handed out precomputed, as a pre-encoded batch would be):
  the time until ``Index.add`` returns, i.e. the new generation is committed and open;
* **check** that a search right after sees exactly the new state: each added document is the
  only BM25 hit of its own key token and the dense rank-1 hit of its own vector;
* **delete** 1,000 random existing documents (tombstones in the big segment), timed the same way,
  and check that none of them is found any more by its key token or its vector.

Merges the policy triggers are part of the timed add or delete (none at these repeats: one
1,000-document segment per add).

*Before* is densa at commit ``cacdacf`` (one generation folder, rebuilt on every change),
checked out with ``git worktree`` under ``bench/work/densa-v1`` and run in a subprocess on the
same documents and vectors: one add and one delete per size (``--old-sizes``), since each
rewrites the whole index.

Run::

    .venv/bin/python bench/updates.py --data ../shared/data

Writes ``bench/results/updates.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from common import DEFAULT_DATA, RESULTS, WORK, PrecomputedEncoder, markdown_table, write_results
from densa.index import Index
from densa.types import Document
from scale_1m import DATASETS, grow, real_base, row_of

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "cacdacf"
CHANGE = 1_000

_OLD = """
import json, sys, time
from pathlib import Path
import numpy as np
import densa
assert "densa-v1" in densa.__file__, densa.__file__  # the old version, not this checkout
from densa.encode import SentenceTransformerEncoder
from densa.index import Index
from densa.types import Document

folder, vectors_path = sys.argv[1], sys.argv[2]
n, change, deleted = int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
vectors = np.load(vectors_path, mmap_mode="r")
texts = json.loads(Path(vectors_path).with_suffix(".json").read_text())
real = SentenceTransformerEncoder()

class Feeder:
    spec, tokenizer = real.spec, real.tokenizer
    def encode_queries(self, t): return real.encode_queries(t)
    def encode_documents(self, t): return np.ascontiguousarray(vectors[[int(x[1:x.index("]")]) for x in t]])
    def count_truncated(self, t): return 0

def docs(lo, hi):
    return (Document(f"p{i}", f"[{i}] key{i}x {texts[i % len(texts)]}") for i in range(lo, hi))

start = time.perf_counter()
index = Index.build(docs(0, n), folder, encoder=Feeder(), overwrite=True, resume=False, batch_size=8192)
build = time.perf_counter() - start
start = time.perf_counter()
index = index.add(list(docs(n, n + change)))
add = time.perf_counter() - start
start = time.perf_counter()
index = index.delete([f"p{i}" for i in deleted])
delete = time.perf_counter() - start
print(json.dumps({"build_s": build, "add_s": add, "delete_s": delete, "documents": len(index)}))
"""


def old_version() -> Path:
    """densa before segments, as a git worktree (made once)."""
    tree = WORK / "densa-v1"
    if not (tree / "src" / "densa").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), OLD_COMMIT], check=True
        )
    return tree


def documents(texts: list[str], lo: int, hi: int) -> Iterator[Document]:
    """Documents ``p{lo}`` .. ``p{hi-1}``; ``row_of`` finds each one's vector from its ``[i]``."""
    for i in range(lo, hi):
        yield Document(f"p{i}", f"[{i}] key{i}x {texts[i % len(texts)]}")


def dense_top(index: Index, vectors: np.ndarray) -> list[set[str]]:
    """The dense channel's rank-1 documents for each query vector (all of them when several tie:
    the real corpora hold a few duplicate passages, whose vectors are equal)."""
    snapshot = index.snapshot
    found = snapshot.channel("dense").search(vectors, 1, snapshot.allowed())
    ids = snapshot.doc_ids(int(r) for f in found for r in f.ids)
    return [{ids[int(r)] for r in f.ids} for f in found]


def bm25_hits(index: Index, keys: list[int]) -> list[list[str]]:
    """Every BM25 hit of each ``key{i}x`` token (the document ``p{i}`` alone, if it is live)."""
    snapshot = index.snapshot
    channel = snapshot.channel("bm25")
    found = channel.search(channel.encode_queries([f"key{i}x" for i in keys]), 5, snapshot.allowed())
    ids = snapshot.doc_ids(int(r) for f in found for r in f.ids)
    return [[ids[int(r)] for r in f.ids] for f in found]


def measure(
    n: int, repeats: int, vectors: np.ndarray, texts: list[str], real: Any, seed: int
) -> dict[str, Any]:
    folder = WORK / f"updates-{n}"
    feeder = PrecomputedEncoder(real, vectors, row_of, count_truncated=False)
    start = time.perf_counter()
    index = Index.build(
        documents(texts, 0, n), folder, encoder=feeder, overwrite=True, resume=False, batch_size=8192
    )
    build = time.perf_counter() - start
    rng = random.Random(seed)
    live, next_id = set(range(n)), n
    adds, deletes = [], []
    for _ in range(repeats):
        new = list(range(next_id, next_id + CHANGE))
        batch = list(documents(texts, new[0], new[-1] + 1))
        start = time.perf_counter()
        index = index.add(batch)
        adds.append(time.perf_counter() - start)
        assert len(index) == len(live) + CHANGE
        assert bm25_hits(index, new) == [[f"p{i}"] for i in new], "an added document is not searchable"
        assert all(f"p{i}" in top for i, top in zip(new, dense_top(index, vectors[new]), strict=True))
        live.update(new)
        next_id += CHANGE
        gone = rng.sample(sorted(live - set(new)), CHANGE)
        start = time.perf_counter()
        index = index.delete([f"p{i}" for i in gone])
        deletes.append(time.perf_counter() - start)
        live.difference_update(gone)
        assert len(index) == len(live)
        assert bm25_hits(index, gone) == [[] for _ in gone], "a deleted document is still found"
        assert not {f"p{i}" for i in gone} & set().union(*dense_top(index, vectors[gone]))
    index.close()
    return {
        "n": n,
        "build_s": build,
        "add_s": adds,
        "delete_s": deletes,
        "add_median_s": float(np.median(adds)),
        "delete_median_s": float(np.median(deletes)),
        "segments_after": len(Index.open(folder, encoder=feeder).manifest.segments),
    }


def measure_old(n: int, vectors: np.ndarray, texts: list[str], seed: int) -> dict[str, Any]:
    tree = old_version()
    shared = WORK / "updates-vectors.npy"
    np.save(shared, vectors[: n + CHANGE])
    shared.with_suffix(".json").write_text(json.dumps(texts))
    gone = random.Random(seed).sample(range(n), CHANGE)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _OLD,
            str(WORK / f"updates-old-{n}"),
            str(shared),
            str(n),
            str(CHANGE),
            json.dumps(gone),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree / "src"), "HF_HUB_OFFLINE": "1"},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["documents"] == n
    shutil.rmtree(WORK / f"updates-old-{n}", ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--old-sizes", default="10000,100000,1000000", help="sizes to time densa before segments on"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    command = "python bench/updates.py " + " ".join(sys.argv[1:])
    sizes = [int(s) for s in args.sizes.split(",")]
    old_sizes = [int(s) for s in args.old_sizes.split(",") if s]
    base, texts, real = real_base(args.data, list(DATASETS))
    vectors = grow(base, max(sizes) + (args.repeats + 1) * CHANGE)
    rows: list[dict[str, Any]] = []
    for n in sizes:
        row = measure(n, args.repeats, vectors, texts, real, seed=n)
        if n in old_sizes:
            row["before"] = measure_old(n, vectors, texts, seed=n)
        rows.append(row)
        print(json.dumps(row), flush=True)
        shutil.rmtree(WORK / f"updates-{n}", ignore_errors=True)
        table = markdown_table(
            [
                "passages",
                "add 1,000 (median s)",
                "delete 1,000 (median s)",
                "before: add s",
                "before: delete s",
                "build s",
                "before: build s",
            ],
            [
                [
                    r["n"],
                    r["add_median_s"],
                    r["delete_median_s"],
                    r.get("before", {}).get("add_s", "not run"),
                    r.get("before", {}).get("delete_s", "not run"),
                    r["build_s"],
                    r.get("before", {}).get("build_s", "not run"),
                ]
                for r in rows
            ],
        )
        table += (
            f"\n\nEach add and delete is followed by searches that check the new state exactly "
            f"(every added document found by its token and its vector, no deleted one found); "
            f"{args.repeats} repeats, each timed add/delete listed in the JSON. 'before' = densa at "
            f"{OLD_COMMIT} (before segments), one add and one delete of the same documents."
        )
        write_results("updates", {"change": CHANGE, "rows": rows}, table, command)
    print((RESULTS / "updates.md").read_text())


if __name__ == "__main__":
    main()
