from __future__ import annotations

from pathlib import Path

import pytest

from densa.errors import InputError
from densa.types import Document, Run


def test_run_ranks_by_score_then_id_descending_like_trec_eval() -> None:
    run = Run({"q": {"a": 1.0, "b": 2.0, "c": 1.0}})
    assert [(h.doc_id, h.rank) for h in run.ranked("q")] == [("b", 1), ("c", 2), ("a", 3)]
    assert run.ranked("missing") == []
    assert run.top(1).to_beir() == {"q": {"b": 2.0}}


def test_run_trec_file_round_trip_is_lossless(tmp_path: Path) -> None:
    run = Run({"q1": {"d1": 0.123456789012345, "d2": -3.5}, "q2": {"d9": 1e-9}}, name="mine")
    path = tmp_path / "run.trec"
    run.write_trec(path)
    back = Run.read_trec(path)
    assert back.to_beir() == run.to_beir()
    assert back.name == "mine"
    assert path.read_text().splitlines()[0] == "q1 Q0 d1 1 0.123456789012345 mine"


def test_run_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 nan? t\n")
    with pytest.raises(InputError, match=r"run.trec:2: score 'nan\?' is not a number"):
        Run.read_trec(path)
    path.write_text("q1 Q0 d1 1\n")
    with pytest.raises(InputError, match=r"run.trec:1: expected 6 fields"):
        Run.read_trec(path)


def test_document_rejects_empty_text() -> None:
    with pytest.raises(ValueError, match="empty text"):
        Document("a", "  ")
    assert Document("a", "body", title="T").full_text == "T body"
