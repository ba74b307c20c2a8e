from __future__ import annotations

from pathlib import Path

import pytest

from densa.corpus import BeirDataset, read_qrels, read_queries
from densa.errors import InputError
from tests.helpers import TINY


def test_queries_jsonl_and_tsv(tmp_path: Path) -> None:
    assert [q.id for q in read_queries(TINY / "queries.jsonl")] == ["q1", "q2", "q3", "q4"]
    tsv = tmp_path / "q.tsv"
    tsv.write_text("7\tfirst query\n8\tsecond\n", encoding="utf-8")
    assert [(q.id, q.text) for q in read_queries(tsv)] == [("7", "first query"), ("8", "second")]


def test_duplicate_query_id(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_text("1\ta\n1\tb\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"q.tsv:2: duplicate query id '1'"):
        read_queries(path)


def test_qrels_beir_and_trec_formats(tmp_path: Path) -> None:
    beir = read_qrels(TINY / "qrels" / "test.tsv")
    assert beir.judgements["q1"] == {"d3": 2}
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d3 2\nq1 0 d4 0\n", encoding="utf-8")
    qrels = read_qrels(trec)
    assert qrels.judgements["q1"] == {"d3": 2, "d4": 0}
    assert qrels.relevant("q1") == {"d3"}


def test_qrels_bad_grade(tmp_path: Path) -> None:
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"qrels.tsv:2: relevance 'high'"):
        read_qrels(path)


def test_beir_dataset_queries_are_the_judged_ones(tmp_path: Path) -> None:
    dataset = BeirDataset(TINY)
    assert dataset.splits() == ["test"]
    assert len(dataset.queries("test")) == 4
    with pytest.raises(InputError, match="no qrels for split 'train'"):
        dataset.qrels("train")
    with pytest.raises(InputError, match="dataset folder not found"):
        BeirDataset(tmp_path / "missing")
