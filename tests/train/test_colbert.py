"""ColBERT training on a tiny random BERT: the loss goes down, the model is a
sentence-transformers MultiVectorEncoder folder that densa indexes, and training resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from densa.encode.colbert import ColbertEncoder, is_colbert_model
from densa.errors import ConfigError
from densa.train.colbert import ColbertTrainConfig, train_colbert
from tests.train.test_training import _examples


def test_config_refuses_what_cannot_train() -> None:
    with pytest.raises(ConfigError):
        ColbertTrainConfig(batch_size=1)
    with pytest.raises(ConfigError):
        ColbertTrainConfig(temperature=0)


@pytest.mark.slow
def test_colbert_trains_saves_and_resumes(tmp_path: Path, tiny_bert: Path) -> None:
    from sentence_transformers import MultiVectorEncoder

    config = ColbertTrainConfig(
        base=str(tiny_bert),
        dim=16,
        query_length=16,
        document_length=48,
        batch_size=8,
        max_steps=20,
        learning_rate=1e-3,
        logging_steps=5,
        eval_steps=10,
        save_steps=10,
        dev_fraction=0.2,
    )
    output = tmp_path / "colbert"
    result = train_colbert(_examples(), output, config, progress=False)
    assert result.steps == 20 and result.dev_ndcg is not None
    losses = [e["loss"] for e in result.history if "loss" in e]
    assert losses[-1] < losses[0]
    assert is_colbert_model(output)
    record = json.loads((output / "densa_training.json").read_text())
    assert record["config"]["dim"] == 16 and record["examples"]["train"] == 19
    # loads in sentence-transformers' own class, markers and query expansion kept
    model = MultiVectorEncoder(str(output), device="cpu")
    assert model.prompts == {"query": "[unused0] ", "document": "[unused1] "}
    assert [len(q) for q in model.encode_query(["volcano"], convert_to_numpy=True)] == [16]
    encoder = ColbertEncoder(str(output), device="cpu")
    assert encoder.spec.dim == 16 and encoder.spec.document_length == 48
    # a second call with more steps continues from the last checkpoint
    more = train_colbert(
        _examples(), output, ColbertTrainConfig(**{**record["config"], "max_steps": 25}), progress=False
    )
    assert more.steps == 25


def test_distilling_from_a_cross_encoder_teacher(tmp_path: Path, tiny_bert: Path, minilm_path: Path) -> None:
    from densa.rerank import CrossEncoderReranker
    from densa.train import build_dataset
    from densa.train.colbert import teacher_labels
    from tests.helpers import build_tiny_bert

    teacher = build_tiny_bert(tmp_path / "teacher", minilm_path, seed=3, classifier=True)
    columns = build_dataset(_examples()[:4], hard_negatives=1, seed=0)
    labels = teacher_labels(columns, str(teacher))
    expected = CrossEncoderReranker(teacher, device="cpu").score(
        [(columns["query"][1], columns["positive"][1]), (columns["query"][1], columns["negative_1"][1])]
    )
    assert len(labels) == 4 and labels[1] == pytest.approx(expected, rel=1e-5)
    config = ColbertTrainConfig(
        base=str(tiny_bert),
        dim=16,
        query_length=16,
        document_length=48,
        batch_size=8,
        max_steps=4,
        teacher=str(teacher),
        logging_steps=2,
        dev_fraction=0.0,
    )
    result = train_colbert(_examples(), tmp_path / "student", config, progress=False)
    assert result.steps == 4 and any("loss" in e for e in result.history)
    with pytest.raises(ConfigError):
        ColbertTrainConfig(teacher=str(teacher), hard_negatives=0)
