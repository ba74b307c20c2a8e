"""Resumable builds: encoded shards survive a crash or SIGKILL and are not encoded again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from densa.index import Index
from densa.index.shards import BUILD_DIR
from densa.types import Document
from tests.helpers import HashingEncoder, search
from tests.index.build_process import documents

ROOT = Path(__file__).parents[2]


def _vectors(index: Index) -> np.ndarray:
    return np.concatenate([part.all_vectors() for part in index.channel("dense").parts])  # type: ignore[attr-defined]


def _same(a: Index, b: Index) -> None:
    np.testing.assert_array_equal(_vectors(a), _vectors(b))
    queries = ["topic 3 field 2", "document 17"]
    assert search(a, queries, 10) == search(b, queries, 10)
    assert search(a, queries, 10, mode="bm25") == search(b, queries, 10, mode="bm25")


def test_a_crashed_build_resumes_without_re_encoding(tmp_path: Path) -> None:
    def crashing() -> Iterator[Document]:
        for i, doc in enumerate(documents(100, 0.0)):
            if i == 65:
                raise KeyboardInterrupt  # like Ctrl-C half-way through
            yield doc

    with pytest.raises(KeyboardInterrupt):
        Index.build(crashing(), tmp_path / "idx", encoder=HashingEncoder(), batch_size=20)
    shards = tmp_path / "idx" / BUILD_DIR / "dense"  # the dense channel's
    assert len(list(shards.glob("shard-*.json"))) == 3  # batches 0-2 were finished
    encoder = HashingEncoder()
    resumed = Index.build(documents(100, 0.0), tmp_path / "idx", encoder=encoder, batch_size=20)
    assert encoder.encoded_documents == 40  # only batches 3 and 4
    assert not (tmp_path / "idx" / BUILD_DIR).exists()  # cleaned up once the build is done
    fresh = Index.build(documents(100, 0.0), tmp_path / "fresh", encoder=HashingEncoder(), batch_size=20)
    _same(resumed, fresh)


def test_shards_from_other_settings_are_not_reused(tmp_path: Path) -> None:
    def crashing() -> Iterator[Document]:
        yield from list(documents(40, 0.0))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Index.build(crashing(), tmp_path / "idx", encoder=HashingEncoder(), batch_size=20)
    encoder = HashingEncoder(dim=32)  # another encoder: the old shards must not be mixed in
    Index.build(documents(40, 0.0), tmp_path / "idx", encoder=encoder, batch_size=20)
    assert encoder.encoded_documents == 40


@pytest.mark.slow
def test_kill_9_during_a_build_then_the_same_command_resumes(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    command = [sys.executable, "-m", "tests.index.build_process", str(path), "400", "0.15"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 60
    shards = path / BUILD_DIR / "dense"
    while len(list(shards.glob("shard-*.json"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    finished = len(list(shards.glob("shard-*.json")))
    assert 4 <= finished < 20 and not (path / "manifest.json").exists()
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300, check=True)
    encoded = int(again.stdout.split("encoded ")[1])
    assert encoded <= 400 - 20 * finished  # the finished shards were not encoded again
    fresh = Index.build(documents(400, 0.0), tmp_path / "fresh", encoder=HashingEncoder(), batch_size=20)
    _same(Index.open(path, encoder=HashingEncoder()), fresh)


@pytest.mark.slow
def test_dask_local_cluster_encodes_like_a_single_process(tmp_path: Path) -> None:
    from densa.corpus import read_corpus
    from densa.encode import EncoderConfig
    from tests.helpers import TINY

    config = EncoderConfig(device="cpu")
    single = Index.build(read_corpus(TINY / "corpus.jsonl"), tmp_path / "one", encoder=config, batch_size=3)
    spread = Index.build(
        read_corpus(TINY / "corpus.jsonl"), tmp_path / "two", encoder=config, batch_size=3, dask="local:2"
    )
    assert np.abs(_vectors(single) - _vectors(spread)).max() < 1e-5  # two processes, float noise only
    one, two = search(single, ["heart attack"], 3)[0], search(spread, ["heart attack"], 3)[0]
    assert [h.doc_id for h in one] == [h.doc_id for h in two]
    assert [h.score for h in one] == pytest.approx([h.score for h in two], abs=1e-5)
