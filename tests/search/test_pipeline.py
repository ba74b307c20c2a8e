from __future__ import annotations

import json
from pathlib import Path

import pytest

from densa.errors import InputError
from densa.fuse import FusionConfig
from densa.search import SearchConfig
from densa.search.pipeline import Pipeline, read_pipeline, write_pipeline


def test_a_written_pipeline_reads_back_equal_with_its_reranker_relative(tmp_path: Path) -> None:
    reranker = tmp_path / "models" / "reranker"
    reranker.mkdir(parents=True)
    pipeline = Pipeline(
        SearchConfig(
            mode="dense+bm25",
            depth=50,
            fusion=FusionConfig(
                method="weighted", weights={"dense": 0.7, "bm25": 0.3}, normalization="minmax"
            ),
            rerank_depth=20,
            rerank_weight=0.4,
        ),
        reranker,
        "openvino",
        {"chosen_on": "dev", "ndcg@10": 0.5},
    )
    path = write_pipeline(pipeline, tmp_path / "pipeline.json")
    data = json.loads(path.read_text())
    assert data["reranker"] == "models/reranker" and data["densa_pipeline"] == 1
    assert read_pipeline(path) == Pipeline(
        pipeline.search, tmp_path / "models" / "reranker", "openvino", pipeline.about
    )
    # weights in order (a JSON list) come back as a tuple, as parse_weights gives them
    data["search"]["fusion"]["weights"] = [0.6, 0.4]
    data["reranker"] = None
    path.write_text(json.dumps(data))
    assert read_pipeline(path).search.fusion.weights == (0.6, 0.4)
    # a file in a sibling folder of its reranker's points at it through ".."
    (tmp_path / "results").mkdir()
    beside = write_pipeline(pipeline, tmp_path / "results" / "p.json")
    assert json.loads(beside.read_text())["reranker"] == "../models/reranker"
    assert read_pipeline(beside).reranker == tmp_path / "results" / "../models/reranker"


def test_missing_keys_keep_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"densa_pipeline": 1, "search": {"mode": "hybrid"}}')
    assert read_pipeline(path) == Pipeline(SearchConfig(mode="hybrid"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"densa_pipeline": 1,\n "search": {"mode": "dense",}}', "p.json:2: not valid JSON"),
        ('{"densa_pipeline": 2}', "densa_pipeline must be 1"),
        ('{"search": {}}', "densa_pipeline must be 1"),
        ('{"densa_pipeline": 1, "searhc": {}}', "unknown key(s) in the file: searhc"),
        ('{"densa_pipeline": 1, "search": {"depht": 5}}', "unknown key(s) in search: depht"),
        ('{"densa_pipeline": 1, "search": {"fusion": {"wieghts": {}}}}', "in search.fusion: wieghts"),
        ('{"densa_pipeline": 1, "search": {"depth": "100"}}', "'depth' must be int"),
        ('{"densa_pipeline": 1, "search": {"depth": true}}', "'depth' must be int"),
        ('{"densa_pipeline": 1, "search": {"depth": 0}}', "must be positive"),
        ('{"densa_pipeline": 1, "search": {"rerank_weight": 2}}', "rerank_weight must be in [0, 1]"),
        (
            '{"densa_pipeline": 1, "search": {"fusion": {"weights": {"dense": "x"}}}}',
            "weights must be numbers",
        ),
        ('{"densa_pipeline": 1, "search": []}', "search must be a JSON object"),
        ('{"densa_pipeline": 1, "reranker": "nowhere"}', "reranker folder 'nowhere' does not exist"),
        ("[1]", "the file must be a JSON object"),
    ],
)
def test_bad_pipeline_files_name_the_file_and_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        read_pipeline(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


def test_a_missing_file_is_said(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such pipeline file"):
        read_pipeline(tmp_path / "none.json")
