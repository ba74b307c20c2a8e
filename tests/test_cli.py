from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from densa.cli import app
from tests.helpers import TINY

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "idx"
    out = _ok(["index", str(TINY / "corpus.jsonl"), "-o", str(path)])
    assert "indexed 10 documents" in out
    return path


def test_search_prints_ranked_hits(tiny_index: Path) -> None:
    out = _ok(["search", str(tiny_index), "heart attack", "-k", "3"])
    first = out.splitlines()[0].split()
    assert first[0] == "1" and first[2] == "d3"


def test_search_json(tiny_index: Path) -> None:
    hits = json.loads(_ok(["search", str(tiny_index), "astronauts walking on the moon", "-k", "2", "--json"]))
    assert [h["rank"] for h in hits] == [1, 2]
    assert hits[0]["id"] == "d9"
    assert set(hits[0]) == {"rank", "id", "score", "title", "snippet"}


def test_batch_search_writes_a_trec_run_and_eval_scores_it(tiny_index: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    _ok(
        [
            "search",
            str(tiny_index),
            "--queries",
            str(TINY / "queries.jsonl"),
            "--output",
            str(run),
            "-k",
            "5",
        ]
    )
    lines = run.read_text().splitlines()
    assert len(lines) == 20 and lines[0].split()[:2] == ["q1", "Q0"]
    from_file = json.loads(
        _ok(["eval", "--run", str(run), "--qrels", str(TINY / "qrels/test.tsv"), "--json"])
    )
    direct = json.loads(_ok(["eval", str(tiny_index), "--dataset", str(TINY), "--json"]))
    assert set(direct) == {
        "ndcg@10",
        "recall@100",
        "mrr@10",
        "accuracy@1",
        "accuracy@5",
        "accuracy@20",
        "accuracy@100",
        "queries",
    }
    assert direct["queries"] == 4
    assert direct["accuracy@1"] == 1.0  # every tiny query's answer ranks first
    assert from_file["mrr@10"] == pytest.approx(direct["mrr@10"])


def test_info_shows_the_manifest(tiny_index: Path) -> None:
    info = json.loads(_ok(["info", str(tiny_index)]))
    dense = info["channels"]["dense"]["settings"]
    assert dense["encoder"]["dim"] == 384 and dense["vectors"]["kind"] == "flat"
    assert info["channels"]["bm25"]["kind"] == "bm25"
    assert info["counts"]["documents"] == 10 and info["counts"]["segments"] == 1
    assert (
        info["bytes"]["on_disk"] > 0
        and info["bytes"]["dense"] == info["segments"][0]["parts"]["dense"]["bytes"]
    )


def _densa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "densa", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_bad_corpus_is_one_clear_error_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.jsonl"
    bad.write_text('{"_id": "a", "text": "ok"}\n{"_id": "b", "text": \n', encoding="utf-8")
    result = _densa("index", str(bad), "-o", str(tmp_path / "idx"))
    assert result.returncode == 2
    assert f"error: {bad}:2: malformed JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "idx").exists()


@pytest.mark.slow
def test_skip_bad_indexes_the_rest_and_reports(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.jsonl"
    bad.write_text(
        '{"_id": "a", "text": "ok text"}\n{broken\n{"_id": "c", "text": "more"}\n', encoding="utf-8"
    )
    result = _densa("index", str(bad), "-o", str(tmp_path / "idx"), "--skip-bad")
    assert result.returncode == 0, result.stderr
    assert "indexed 2 documents" in result.stdout
    assert f"{bad}:2: malformed JSON" in result.stderr


def test_modes_filters_add_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    _ok(["index", str(TINY / "corpus.jsonl"), "-o", str(path)])
    bm25 = json.loads(_ok(["search", str(path), "shark attack", "--mode", "bm25", "--json"]))
    assert [h["id"] for h in bm25] == ["d5"]
    hybrid = json.loads(_ok(["search", str(path), "heart attack", "--mode", "hybrid", "--json", "-k", "3"]))
    assert "d3" in {h["id"] for h in hybrid}  # the dense-only meaning match survives fusion
    filtered = json.loads(_ok(["search", str(path), "heart attack", "--filter", "topic=medical", "--json"]))
    assert {h["id"] for h in filtered} == {"d3", "d4"}

    extra = tmp_path / "extra.jsonl"
    new_doc = {"_id": "n1", "title": "Cardiac arrest", "text": "The heart stops beating."}
    extra.write_text(json.dumps(new_doc) + "\n")
    assert "now holds 11" in _ok(["add", str(path), str(extra)])
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps({"_id": "n2", "text": "new"}) + "\n" + json.dumps(new_doc) + "\n")
    refused = runner.invoke(app, ["add", str(path), str(again)])
    assert str(refused.exception) == f"{again}:2: document id 'n1' is already in the index"  # main(): exit 2
    assert json.loads(_ok(["info", str(path)]))["counts"]["documents"] == 11  # n2 not added either
    assert "now holds 9" in _ok(["delete", str(path), "n1", "d3"])
    after = json.loads(_ok(["search", str(path), "heart attack", "--mode", "hybrid", "--json", "-k", "20"]))
    assert {"n1", "d3"}.isdisjoint(h["id"] for h in after)
    assert json.loads(_ok(["info", str(path)]))["counts"]["documents"] == 9


def test_chunked_index_reports_what_would_have_been_truncated(tmp_path: Path) -> None:
    long_doc = {"_id": "long", "title": "Long", "text": "A sentence about glazes and kilns. " * 80}
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps(long_doc) + "\n" + json.dumps({"_id": "s", "text": "short"}) + "\n")
    chunk_options = ["--chunk-tokens", "128", "--chunk-overlap", "16"]
    out = _ok(["index", str(corpus), "-o", str(tmp_path / "idx"), *chunk_options])
    assert "indexed 2 documents (" in out
    assert "1 document(s) exceed the 256-token limit and were split into passages" in out


@pytest.mark.slow
def test_index_on_a_local_dask_cluster(tmp_path: Path) -> None:
    out = _ok(["index", str(TINY / "corpus.jsonl"), "-o", str(tmp_path / "idx"), "--dask", "local:2"])
    assert "indexed 10 documents" in out
    hits = json.loads(_ok(["search", str(tmp_path / "idx"), "heart attack", "--json", "-k", "1"]))
    assert hits[0]["id"] == "d3"


@pytest.mark.slow
def test_index_on_openvino_int8_calibrates_on_the_corpus(tmp_path: Path, minilm_path: Path) -> None:
    model = tmp_path / "minilm"
    shutil.copytree(
        minilm_path, model, ignore=shutil.ignore_patterns("onnx")
    )  # a writable copy, not yet calibrated
    index = tmp_path / "idx"
    args = ["index", str(TINY / "corpus.jsonl"), "-o", str(index), "--model", str(model)]
    out = _ok([*args, "--backend", "openvino-int8"])
    assert "backend openvino-int8: mean cosine with fp32 torch on 10 passages = 0.9" in out
    (record,) = (model / "onnx").glob("*-ov-int8.json")
    assert json.loads(record.read_text())["calibration_texts"] == 10  # the corpus's 10 documents
    hits = json.loads(_ok(["search", str(index), "heart attack", "--json", "-k", "1"]))
    assert hits[0]["id"] == "d3"


def test_named_channels_a_second_model_and_optimize(tmp_path: Path, tiny_bert: Path) -> None:
    path = tmp_path / "idx"
    out = _ok(
        ["index", str(TINY / "corpus.jsonl"), "-o", str(path), "--channel", "dense:hnsw", "--channel", "bm25"]
    )
    assert "channels: dense, bm25" in out
    info = json.loads(_ok(["info", str(path)]))
    assert info["channels"]["dense"]["settings"]["vectors"]["kind"] == "hnsw"
    added = _ok(
        [
            "add-channel",
            str(path),
            "--channel",
            "tiny=dense:flat",
            "--model",
            str(tiny_bert),
            "--pooling",
            "mean",
        ]
    )
    assert "added channel tiny (dense) over 10 documents" in added and "channels: dense, bm25, tiny" in added
    tiny = json.loads(_ok(["search", str(path), "heart attack", "--mode", "tiny", "--json", "-k", "10"]))
    assert len(tiny) == 10  # a random tiny model: every document, in some order
    dense = json.loads(_ok(["search", str(path), "heart attack", "--mode", "dense", "--json", "-k", "3"]))
    assert dense[0]["id"] == "d3"  # the original channel is untouched
    three = ["search", str(path), "heart attack", "--mode", "hybrid", "--json", "-k", "3"]
    weighted = json.loads(_ok([*three, "--weights", "dense=1,bm25=1,tiny=0"]))
    two = json.loads(_ok(["search", str(path), "heart attack", "--mode", "dense+bm25", "--json", "-k", "3"]))
    assert [h["id"] for h in weighted] == [h["id"] for h in two]  # weight 0 leaves tiny out of the order
    result = runner.invoke(app, [*three, "--weights", "dense=1"])
    assert result.exit_code != 0 and "no fusion weight for bm25, tiny" in str(result.exception)
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"_id": "n1", "text": "Heart attack symptoms."}) + "\n")
    _ok(["add", str(path), str(extra)])
    _ok(["delete", str(path), "d9"])
    assert "2 segment(s) -> 1; 10 documents" in _ok(["optimize", str(path)])
    assert json.loads(_ok(["info", str(path)]))["counts"] == {
        "documents": 10,
        "passages": 10,
        "segments": 1,
        "deleted": 0,
    }


def test_upgrade_command_converts_a_format_1_index(tmp_path: Path) -> None:
    from tests.helpers import FIXTURES

    old = tmp_path / "old"
    shutil.copytree(FIXTURES / "format1-index", old)
    refused = runner.invoke(app, ["info", str(old)])
    assert refused.exit_code != 0 and f"densa upgrade {old}" in str(refused.exception)
    assert "upgraded" in _ok(["upgrade", str(old)])
    assert json.loads(_ok(["info", str(old)]))["counts"]["documents"] == 10


@pytest.mark.parametrize("command", ["search", "eval"])
def test_every_search_option_is_a_cli_option(command: str) -> None:
    import dataclasses
    import inspect

    from densa.cli import eval_, search
    from densa.fuse import FusionConfig
    from densa.search import SearchConfig

    wanted = {f.name for f in dataclasses.fields(SearchConfig)} - {"fusion"}
    wanted |= {"fusion" if f.name == "method" else f.name for f in dataclasses.fields(FusionConfig)}
    function = {"search": search, "eval": eval_}[command]
    assert wanted <= set(inspect.signature(function).parameters)


def test_batch_search_writes_1000_hits_a_query_by_default_and_no_results_is_said(
    tiny_index: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run.trec"
    _ok(["search", str(tiny_index), "--queries", str(TINY / "queries.jsonl"), "--output", str(run)])
    assert len(run.read_text().splitlines()) == 4 * 10  # every document of the tiny corpus, up to 1000
    empty = _ok(["search", str(tiny_index), "heart", "--filter", "topic=nothing"])
    assert empty.startswith("no results")


def test_index_into_an_engine_and_export_to_another(tmp_path: Path) -> None:
    from densa.index.engines import close_all

    path = tmp_path / "idx"
    try:
        out = _ok(["index", str(TINY / "corpus.jsonl"), "-o", str(path), "--engine", "qdrant"])
        assert "indexed 10 documents" in out
        assert (path / "engines" / "qdrant").is_dir()
        hits = json.loads(_ok(["search", str(path), "heart attack", "--json", "-k", "3"]))
        assert hits[0]["id"] == "d3"
        out = _ok(["export", str(path), "--engine", "milvus"])
        assert "as channel dense-milvus (flat)" in out
        moved = json.loads(
            _ok(["search", str(path), "heart attack", "--json", "-k", "3", "--mode", "dense-milvus"])
        )
        assert [h["id"] for h in moved] == [h["id"] for h in hits]
        refused = runner.invoke(app, ["export", str(path), "--engine", "qdrant", "--kind", "ivf-flat"])
        assert "qdrant has no 'ivf-flat' index" in str(refused.exception)
    finally:
        close_all()


def test_eval_of_a_fused_mode_prints_each_channel_beside_the_fusion(tiny_index: Path) -> None:
    assert "too few documents to measure" in _ok(["calibrate", str(tiny_index)])
    out = _ok(["eval", str(tiny_index), "--dataset", str(TINY), "--mode", "hybrid"])
    header, ndcg = out.splitlines()[0].split(), out.splitlines()[1].split()
    assert header == ["dense", "bm25", "hybrid"] and ndcg[0] == "ndcg@10" and len(ndcg) == 4
    report = json.loads(_ok(["eval", str(tiny_index), "--dataset", str(TINY), "--mode", "hybrid", "--json"]))
    assert set(report["channels"]) == {"dense", "bm25"}
    assert report["channels"]["dense"]["ndcg@10"] == pytest.approx(float(ndcg[1]), abs=1e-4)
    assert report["ndcg@10"] == pytest.approx(float(ndcg[3]), abs=1e-4)


def test_index_measures_the_channels_for_fusion_and_calibrate_measures_again(
    tmp_path: Path, tiny_bert: Path
) -> None:
    from tests.search.test_calibrate import _corpus

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in _corpus(60)))
    path = tmp_path / "idx"
    out = _ok(["index", str(corpus), "-o", str(path), "--model", str(tiny_bert), "--pooling", "mean"])
    assert "fusion measured on 60 pseudo-queries" in out and "dense=" in out and "bm25=" in out
    assert (path / "fusion-calibration.npz").is_file()
    again = _ok(["calibrate", str(path), "--queries", "55"])
    assert again.startswith("fusion measured on 55 pseudo-queries")


def test_distill_a_static_model_and_index_with_it(tmp_path: Path, tiny_bert: Path) -> None:
    model = tmp_path / "static"
    assert "static model written" in _ok(
        ["distill", "-o", str(model), "--model", str(tiny_bert), "--pca-dims", "8"]
    )
    path = tmp_path / "idx"
    out = _ok(["index", str(TINY / "corpus.jsonl"), "-o", str(path), "--model", str(model)])
    assert "indexed 10 documents" in out
    info = json.loads(_ok(["info", str(path)]))
    assert info["channels"]["dense"]["settings"]["encoder"]["backend"] == "static"
    hits = json.loads(_ok(["search", str(path), "heart attack", "--json", "-k", "3"]))
    assert len(hits) == 3


def test_adapt_adds_an_adapted_channel_and_prints_before_and_after(tmp_path: Path, tiny_bert: Path) -> None:
    from tests.search.test_calibrate import _corpus

    docs = _corpus(100)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in docs))
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    shutil.copy(corpus, beir / "corpus.jsonl")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "shark ocean reef"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tdoc001\t1\n")
    path = tmp_path / "idx"
    _ok(["index", str(corpus), "-o", str(path), "--model", str(tiny_bert), "--pooling", "mean"])
    out = _ok(["adapt", str(path), "-o", str(tmp_path / "model"), "--queries", "40", "--dataset", str(beir)])
    assert "pseudo-queries" in out and "channel adapted added" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert {"dense", "adapted", "dense+bm25", "adapted+bm25"} <= set(lines)
    assert json.loads(_ok(["info", str(path)]))["channels"]["adapted"]["kind"] == "dense"
    refused = runner.invoke(app, ["adapt", str(path), "-o", str(tmp_path / "m2"), "--pseudo", "summary"])
    assert refused.exit_code != 0 and "must be one of cloze, title, keywords" in str(refused.exception)
    assert not (tmp_path / "m2").exists()


def test_train_a_colbert_model_index_and_search_with_it(tmp_path: Path, tiny_bert: Path) -> None:
    from densa.train import write_dpr
    from tests.train.test_training import _examples

    data = tmp_path / "train.jsonl"
    write_dpr(_examples(), data)
    model = tmp_path / "colbert"
    trained = _ok(
        [
            *(
                "train",
                "--family",
                "colbert",
                "--data",
                str(data),
                "-o",
                str(model),
                "--base",
                str(tiny_bert),
            ),
            *("--max-steps", "2", "--batch-size", "8", "--dim", "16", "--max-length", "48"),
        ]
    )
    assert "--channel colbert --colbert-model" in trained
    refused = runner.invoke(
        app, ["train", "--family", "colbert", "--data", str(data), "-o", str(model), "--separate-towers"]
    )
    assert refused.exit_code == 2 and "not for --family colbert" in refused.output
    path = tmp_path / "idx"
    corpus = str(TINY / "corpus.jsonl")
    missing = runner.invoke(app, ["index", corpus, "-o", str(path), "--channel", "colbert"])
    assert missing.exit_code != 0 and "needs --colbert-model DIR" in str(missing.exception)
    out = _ok(
        [
            *("index", corpus, "-o", str(path), "--channel", "colbert", "--channel", "bm25"),
            "--colbert-model",
            str(model),
        ]
    )
    assert "indexed 10 documents" in out and "channels: colbert, bm25" in out
    info = json.loads(_ok(["info", str(path)]))
    assert info["channels"]["colbert"]["kind"] == "colbert"
    hits = json.loads(_ok(["search", str(path), "heart attack", "--mode", "colbert", "--json", "-k", "3"]))
    assert len(hits) == 3
    fused = _ok(["eval", str(path), "--dataset", str(TINY), "--mode", "colbert+bm25"])
    assert "colbert" in fused and "bm25" in fused


def test_train_a_splade_model_index_and_search_with_it(tmp_path: Path, tiny_bert: Path) -> None:
    from densa.train import write_dpr
    from tests.train.test_training import _examples

    data = tmp_path / "train.jsonl"
    write_dpr(_examples(), data)
    model = tmp_path / "splade"
    trained = _ok(
        [
            *("train", "--family", "splade", "--data", str(data), "-o", str(model), "--base", str(tiny_bert)),
            *("--max-steps", "2", "--batch-size", "8", "--max-length", "48", "--eval-steps", "1"),
        ]
    )
    assert "no MLM head: initialised from the tied input embeddings" in trained
    assert "--channel splade --splade-model" in trained
    path = tmp_path / "idx"
    corpus = str(TINY / "corpus.jsonl")
    out = _ok(
        [
            "index",
            corpus,
            "-o",
            str(path),
            "--channel",
            "splade",
            "--splade-model",
            str(model),
            "--splade-terms",
            "50",
        ]
    )
    assert "indexed 10 documents" in out
    info = json.loads(_ok(["info", str(path)]))
    assert info["channels"]["splade"]["settings"]["max_terms"] == 50
    assert (
        json.loads(_ok(["search", str(path), "heart attack", "--mode", "splade", "--json", "-k", "3"]))
        is not None
    )


def test_fine_tune_a_static_model_and_index_with_it(tmp_path: Path, tiny_bert: Path) -> None:
    from densa.encode import EncoderConfig
    from densa.encode.static import StaticEncoder
    from densa.train import write_dpr
    from tests.train.test_training import _examples

    static = tmp_path / "static"
    _ok(["distill", "-o", str(static), "--model", str(tiny_bert), "--pca-dims", "8"])
    data = tmp_path / "train.jsonl"
    write_dpr(_examples(), data)
    tuned = tmp_path / "tuned"
    out = _ok(
        [
            *("train", "--family", "static", "--data", str(data), "-o", str(tuned), "--base", str(static)),
            *("--max-steps", "20", "--batch-size", "8", "--eval-steps", "10"),
        ]
    )
    assert (
        "--model" in out and (tuned / "model.safetensors").is_file() and not (tuned / "modules.json").exists()
    )
    before = StaticEncoder(EncoderConfig(model=str(static)))
    after = StaticEncoder(EncoderConfig(model=str(tuned)))
    texts = ["tell me about the volcano", "an article on the volcano and its volcano facts"]
    assert not np.allclose(before.encode_documents(texts), after.encode_documents(texts))  # the table moved
    record = json.loads((tuned / "densa_training.json").read_text())
    losses = [e["loss"] for e in record["history"] if "loss" in e]
    assert losses and losses[-1] < losses[0]
    path = tmp_path / "idx"
    assert "indexed 10 documents" in _ok(
        ["index", str(TINY / "corpus.jsonl"), "-o", str(path), "--model", str(tuned)]
    )


def test_a_pipeline_file_drives_search_and_eval_and_options_given_override_it(
    tiny_index: Path, tmp_path: Path, minilm_path: Path
) -> None:
    from tests.helpers import build_tiny_bert

    def ids(*args: str) -> list[str]:
        return [
            h["id"] for h in json.loads(_ok(["search", str(tiny_index), "heart attack", "--json", *args]))
        ]

    pipeline = tmp_path / "pipeline.json"
    pipeline.write_text(
        json.dumps(
            {
                "densa_pipeline": 1,
                "search": {"mode": "bm25", "depth": 5},
                "about": {"chosen_on": "nothing: a test"},
            }
        )
    )
    assert ids("--pipeline", str(pipeline)) == ids("--mode", "bm25", "--depth", "5")
    assert ids("--pipeline", str(pipeline), "--mode", "dense") == ids("--mode", "dense", "--depth", "5")
    # fusion weights and a reranker from the file: equal to the same options given by hand
    reranker = build_tiny_bert(tmp_path / "ce", minilm_path, classifier=True)
    fused = {
        "mode": "dense+bm25",
        "fusion": {"method": "weighted", "weights": {"dense": 0.8, "bm25": 0.2}},
        "rerank_depth": 4,
        "rerank_weight": 0.5,
    }
    pipeline.write_text(json.dumps({"densa_pipeline": 1, "search": fused, "reranker": "ce"}))
    by_hand = [
        "--mode", "dense+bm25", "--fusion", "weighted", "--weights", "dense=0.8,bm25=0.2",
        "--rerank", str(reranker), "--rerank-depth", "4", "--rerank-weight", "0.5",
    ]  # fmt: skip
    assert ids("--pipeline", str(pipeline)) == ids(*by_hand)
    assert ids("--pipeline", str(pipeline)) != ids("--pipeline", str(pipeline), "--rerank-weight", "0")
    report = json.loads(
        _ok(["eval", str(tiny_index), "--dataset", str(TINY), "--pipeline", str(pipeline), "--json"])
    )
    assert report["ndcg@10"] == pytest.approx(
        json.loads(_ok(["eval", str(tiny_index), "--dataset", str(TINY), "--json", *by_hand]))["ndcg@10"]
    )
    pipeline.write_text('{"densa_pipeline": 1, "search": {"mode": "dense", "depth": "5"}}')
    refused = runner.invoke(app, ["search", str(tiny_index), "heart", "--pipeline", str(pipeline)])
    assert refused.exit_code != 0 and f"{pipeline}: search option 'depth' must be int" in str(
        refused.exception
    )
