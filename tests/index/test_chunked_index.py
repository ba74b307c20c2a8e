"""Long documents: chunked passages, document score = best passage, one hit per document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from densa.chunk import ChunkConfig
from densa.index import Index
from densa.search import SearchConfig
from densa.types import Document
from tests.helpers import HashingEncoder, search

FILLER = " ".join(f"Paragraph {i} discusses pottery glazes and kilns." for i in range(12))
LONG = Document(
    "long", FILLER + " The final section explains volcanic eruptions and lava flows.", title="Crafts"
)
OTHER = Document("other", "A short note about lava lamps in the seventies.", title="Lamps")
PLAIN = Document("plain", "Pottery glazes melt in the kiln.", title="Glazes")


@pytest.fixture
def index(tmp_path: Path) -> Index:
    chunking = ChunkConfig(max_tokens=24, overlap=8)
    return Index.build([LONG, OTHER, PLAIN], tmp_path / "idx", encoder=HashingEncoder(), chunking=chunking)


def test_long_documents_become_several_passages(index: Index) -> None:
    assert index.manifest.documents == 3
    assert index.manifest.passages > 5
    assert index.manifest.channel_stat("dense", "truncated") == 1  # would have lost its tail unchunked
    assert index.build_stats is not None and index.build_stats.passages == index.manifest.passages


def test_tail_of_a_long_document_is_found_with_its_passage_as_snippet(index: Index) -> None:
    hits = search(index, ["volcanic eruptions lava flows"], k=3)[0]
    assert hits[0].doc_id == "long"
    assert "volcanic eruptions" in hits[0].passage
    assert hits[0].passage != hits[0].text  # the passage, not the whole document
    assert len({h.doc_id for h in hits}) == len(hits)  # one line per document


def test_document_score_is_the_best_passage(index: Index) -> None:
    encoder = HashingEncoder()
    query = "pottery glazes kilns"
    hit = next(h for h in search(index, [query], k=3)[0] if h.doc_id == "long")
    snapshot = index.snapshot
    rid = snapshot.locate(["long"])["long"]
    pids = np.flatnonzero(snapshot.passage_documents(np.arange(index.manifest.passages)) == rid)
    spans = snapshot.passage_spans(pids.tolist())
    texts = [f"{LONG.title} {LONG.text[spans[p][1] : spans[p][2]]}" for p in pids.tolist()]
    assert len(texts) > 3
    passage_scores = (encoder.encode_queries([query]) @ encoder.encode_documents(texts).T)[0]
    assert hit.score == pytest.approx(float(passage_scores.max()), abs=1e-5)
    summed = search(index, [query], k=3, config=SearchConfig(aggregate="sum", top_passages=2))[0]
    top_two = sorted(passage_scores, reverse=True)[:2]
    assert next(h for h in summed if h.doc_id == "long").score == pytest.approx(float(sum(top_two)), abs=1e-5)


def test_delete_removes_every_passage(index: Index) -> None:
    updated = index.delete(["long"])
    assert updated.manifest.passages == 2
    assert all(h.doc_id != "long" for h in search(updated, ["volcanic eruptions"], k=5)[0])
