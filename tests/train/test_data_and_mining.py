from __future__ import annotations

import json
from pathlib import Path

import pytest

from densa.corpus import BeirDataset
from densa.errors import ConfigError, InputError
from densa.train import (
    MiningConfig,
    Passage,
    TrainingExample,
    mine_dataset,
    mine_negatives,
    read_dpr,
    write_dpr,
)
from densa.types import Document, Qrels, Query, Run
from tests.helpers import TINY

DOCS = {f"d{i}": Document(f"d{i}", f"text {i}", title=f"T{i}") for i in range(8)}


def test_dpr_jsonl_round_trip_and_dpr_array_files(tmp_path: Path) -> None:
    example = TrainingExample("q?", (Passage("pos", "P", "p1"),), (Passage("neg", "", "n1"),), id="7")
    assert write_dpr([example], tmp_path / "train.jsonl") == 1
    assert read_dpr(tmp_path / "train.jsonl") == [example]
    dpr_file = tmp_path / "dpr.json"  # DPR's own files are one JSON array, with psg_id
    dpr_file.write_text(
        json.dumps(
            [
                {
                    "question": "who?",
                    "answers": ["x"],
                    "positive_ctxs": [{"title": "A", "text": "answer text", "psg_id": "12"}],
                    "negative_ctxs": [],
                    "hard_negative_ctxs": [],
                }
            ]
        )
    )
    (loaded,) = read_dpr(dpr_file)
    assert loaded.positives == (Passage("answer text", "A", "12"),) and loaded.answers == ("x",)


def test_dpr_passage_scores_round_trip_and_bad_scores_name_the_line(tmp_path: Path) -> None:
    example = TrainingExample("q?", (Passage("pos", "", "p1", 3.5),), (Passage("neg", "", "n1", -1.25),))
    write_dpr([example], tmp_path / "train.jsonl")
    assert json.loads((tmp_path / "train.jsonl").read_text())["hard_negative_ctxs"][0]["score"] == -1.25
    assert read_dpr(tmp_path / "train.jsonl") == [example]
    for bad in ('"high"', "true", "NaN"):
        path = tmp_path / "bad.jsonl"
        path.write_text(
            '{"question": "q", "positive_ctxs": [{"text": "p"}]}\n'
            f'{{"question": "q", "positive_ctxs": [{{"text": "p", "score": {bad}}}]}}\n'
        )
        with pytest.raises(InputError, match=r"bad.jsonl:2: a 'score' in 'positive_ctxs' must be a finite"):
            read_dpr(path)
    path.write_text('{"question": "q", "positive_ctxs": [{"text": "p", "score": "12.5"}]}\n')
    assert read_dpr(path)[0].positives[0].score == 12.5  # DPR's own files write scores as strings


def test_dpr_bad_input_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"question": "q", "positive_ctxs": [{"text": "p"}]}\n{"question": "q2", "positive_ctxs": []}\n'
    )
    with pytest.raises(InputError, match=r"bad.jsonl:2: no 'positive_ctxs'"):
        read_dpr(path)


def _run() -> Run:
    # d0 is the positive at rank 2; d1 outranks it; d2 scores within 5 % of it
    return Run({"q": {"d1": 10.0, "d0": 8.0, "d2": 7.9, "d3": 5.0, "d4": 4.0, "d5": 3.0, "d6": 2.0}})


def test_mining_never_returns_a_positive_and_guards_false_negatives() -> None:
    qrels = Qrels({"q": {"d0": 1, "d7": 2, "d3": 0}})
    (example,) = mine_negatives([Query("q", "question")], qrels, _run(), DOCS, MiningConfig(per_query=3))
    negatives = [p.id for p in example.hard_negatives]
    assert {p.id for p in example.positives} == {"d0", "d7"}
    assert not set(negatives) & {"d0", "d7"}
    assert negatives == ["d3", "d4", "d5"]  # d1, d2 score above 0.95 x the positive's 8.0: skipped
    assert [p.score for p in example.hard_negatives] == [5.0, 4.0, 3.0]  # the miner's scores kept
    assert {p.id: p.score for p in example.positives} == {"d0": 8.0, "d7": None}  # d7 not retrieved
    unguarded = mine_negatives(
        [Query("q", "q")], qrels, _run(), DOCS, MiningConfig(per_query=2, relative_margin=None)
    )
    assert [p.id for p in unguarded[0].hard_negatives] == ["d1", "d2"]


def test_mining_depth_and_queries_without_positives() -> None:
    qrels = Qrels({"q": {"d0": 1}, "other": {"d9": 1}})  # d9 is not in the corpus
    examples = mine_negatives(
        [Query("q", "q"), Query("other", "o")], qrels, _run(), DOCS, MiningConfig(depth=3)
    )
    assert [e.id for e in examples] == ["q"]
    assert [p.id for p in examples[0].hard_negatives] == []  # top 3: d1, d0 (positive), d2 - both guarded


def test_bm25_mining_on_a_beir_folder() -> None:
    examples = mine_dataset(
        BeirDataset(TINY), "test", MiningConfig(per_query=2, depth=10, relative_margin=None)
    )
    assert len(examples) == 4
    qrels = BeirDataset(TINY).qrels("test")
    for example in examples:
        assert all(n.id not in qrels.relevant(example.id) for n in example.hard_negatives)
    with pytest.raises(Exception, match="needs --index"):
        mine_dataset(BeirDataset(TINY), "test", MiningConfig(miner="dense"))
    with pytest.raises(ConfigError):
        MiningConfig(per_query=0)
