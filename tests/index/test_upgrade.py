"""An index written by densa before channels and segments (format 1) is refused with the command
that converts it, and converts in place without re-encoding into the same results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from densa.errors import DensaError
from densa.index import Index
from densa.index.upgrade import upgrade_index
from densa.types import Document
from tests.helpers import FIXTURES, HashingEncoder, search

EXPECTED = json.loads((FIXTURES / "format1-expected.json").read_text())


def _above_ties(results: list[list[list[Any]]]) -> list[list[tuple[str, float]]]:
    """Each query's hits that score above its last one (the order inside a tie at the cut was
    FAISS's internal order in format 1, and is by document id now)."""
    out = []
    for hits in results:
        floor = hits[-1][1] if hits else 0.0
        out.append([(d, s) for d, s in hits if s > floor])
    return out


@pytest.fixture
def old_index(tmp_path: Path) -> Path:
    path = tmp_path / "old"
    shutil.copytree(FIXTURES / "format1-index", path)
    return path


def test_a_format_1_index_names_the_upgrade_command(old_index: Path) -> None:
    with pytest.raises(DensaError, match=rf"format 1 .* densa upgrade {old_index}"):
        Index.open(old_index)


def test_upgrade_converts_in_place_to_the_same_results(old_index: Path) -> None:
    encoder = HashingEncoder()
    report = upgrade_index(old_index)
    assert "10 documents" in report and "no re-encoding" in report
    assert encoder.encoded_documents == 0
    assert not list(old_index.glob("gen-*"))  # the old generation folder is gone
    index = Index.open(old_index, encoder=encoder)
    assert list(index.channels) == ["dense", "bm25"] and len(index) == 10
    assert index.get("d2") is None and index.get("x1") is not None  # the old delete and add
    for mode in ("dense", "bm25", "hybrid"):
        got = [
            [[h.doc_id, round(h.score, 5)] for h in hits]
            for hits in search(index, EXPECTED["queries"], 5, mode=mode)
        ]
        assert _above_ties(got) == _above_ties(EXPECTED[mode]), mode
        assert [[s for _, s in q] for q in got] == [[s for _, s in q] for q in EXPECTED[mode]]
    updated = index.add([Document("new", "lava flows from the volcano")]).delete(["d1"])
    assert len(updated) == 10 and search(updated, ["lava volcano"], 1, mode="bm25")[0][0].doc_id == "new"
    assert upgrade_index(old_index).endswith("nothing to do")
