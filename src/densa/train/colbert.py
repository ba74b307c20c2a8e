"""ColBERT training on sentence-transformers' multi-vector trainer.

Contrastive loss over MaxSim scores (Khattab & Zaharia 2020; ColBERTv2's in-batch plus hard
negatives): every question is scored against all the step's positives and hard negatives,
cross-entropy on the right one (``MultiVectorMultipleNegativesRankingLoss``, temperature 1
as PyLate and sentence-transformers recommend for an unbounded MaxSim). Training starts from
a ColBERT folder (fine-tuning) or from any bi-encoder / transformer: then a new 128-d token
projection is added (:func:`densa.encode.colbert.new_colbert_model`). The same DPR-format data
as ``densa train``; dev nDCG@10 by MaxSim during training; resumable from checkpoints. The
saved model is a sentence-transformers ``MultiVectorEncoder`` folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densa.encode.colbert import is_colbert_model, new_colbert_model
from densa.encode.config import DEFAULT_MODEL
from densa.encode.model_files import resolve_model_path
from densa.errors import ConfigError
from densa.train.bi_encoder import DEV_METRICS, TrainResult, dev_collection, finish_run, prepare_run
from densa.train.data import TrainingExample
from densa.train.runs import check_config, shared_arguments

__all__ = ["ColbertTrainConfig", "train_colbert"]

_DEV_METRIC = "eval_dev_maxsim_ndcg@10"


@dataclass(frozen=True)
class ColbertTrainConfig:
    """ColBERT training options (the names and meanings of :class:`~densa.train.TrainConfig`).

    Parameters
    ----------
    base
        A ColBERT folder to fine-tune, or a bi-encoder / transformer to start a new one from
        (default: the bundled all-MiniLM-L6-v2).
    dim, query_length, document_length
        For a new model: token dimension, query length after [MASK] expansion, document limit.
    temperature
        Softmax temperature over MaxSim scores (1: the scores are sums over query tokens).
    teacher
        Distil instead (KL divergence between the student's MaxSim distribution over each
        question's positive and hard negatives and a teacher's; ColBERTv2's recipe): a
        cross-encoder or ColBERT folder, whose scores are computed once before training.
    teacher_temperature
        Temperature of both distributions when distilling.
    """

    base: str = DEFAULT_MODEL
    dim: int = 128
    query_length: int = 32
    document_length: int = 180
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.1
    temperature: float = 1.0
    hard_negatives: int = 1
    teacher: str | None = None
    teacher_temperature: float = 1.0
    dev_fraction: float = 0.1
    eval_steps: int = 50
    save_steps: int = 50
    logging_steps: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        check_config(self)
        if self.dim < 1:
            raise ConfigError("dim must be positive")
        if self.teacher is not None and (self.hard_negatives < 1 or self.teacher_temperature <= 0):
            raise ConfigError("distilling needs hard negatives (>= 1) and a positive teacher temperature")


def _model(config: ColbertTrainConfig) -> Any:
    from sentence_transformers import MultiVectorEncoder

    path = resolve_model_path(config.base)
    if is_colbert_model(path):
        return MultiVectorEncoder(str(path), local_files_only=True)
    return new_colbert_model(
        config.base,
        dim=config.dim,
        query_length=config.query_length,
        document_length=config.document_length,
        seed=config.seed,
    )


def _dev_evaluator(dev: Sequence[TrainingExample], train: Sequence[TrainingExample]) -> Any:
    from sentence_transformers.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator

    return MultiVectorInformationRetrievalEvaluator(*dev_collection(dev, train), **DEV_METRICS)


def teacher_labels(columns: dict[str, list[str]], teacher: str) -> list[list[float]]:
    """The teacher's score of every (question, passage) of every row, passages in column order."""
    from densa.rerank.reranker import load_reranker

    scorer = load_reranker(teacher)
    passages = [c for c in columns if c != "query"]
    pairs = [(q, columns[c][i]) for i, q in enumerate(columns["query"]) for c in passages]
    scores = scorer.score(pairs)
    width = len(passages)
    return [list(scores[i * width : (i + 1) * width]) for i in range(len(columns["query"]))]


def train_colbert(
    examples: Sequence[TrainingExample],
    output: str | Path,
    config: ColbertTrainConfig,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train a ColBERT model on DPR-format examples and save it to ``output`` (a
    ``MultiVectorEncoder`` folder, with ``training.png`` and ``densa_training.json``); a second
    call with the same output resumes from the last checkpoint."""
    from datasets import Dataset
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.multi_vector_encoder import (
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )
    from sentence_transformers.multi_vector_encoder.losses import (
        MultiVectorDistillKLDivLoss,
        MultiVectorMultipleNegativesRankingLoss,
    )

    output, train, dev, columns = prepare_run(examples, output, config)
    model = _model(config)
    # the markers go in as each column's prompt, exactly as encode_query / encode_document add them
    prompts = {
        column: model.prompts.get("query" if column == "query" else "document") or "" for column in columns
    }
    args = MultiVectorEncoderTrainingArguments(
        **shared_arguments(output, config, has_dev=bool(dev), progress=progress),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts={c: p for c, p in prompts.items() if p},
    )
    loss: Any = MultiVectorMultipleNegativesRankingLoss(model, scale=1.0 / config.temperature)
    data: dict[str, Any] = dict(columns)
    if config.teacher is not None:
        data["label"] = teacher_labels(columns, config.teacher)
        loss = MultiVectorDistillKLDivLoss(model, temperature=config.teacher_temperature)
    trainer = MultiVectorEncoderTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(data),
        loss=loss,
        evaluator=_dev_evaluator(dev, train) if dev else None,
    )
    return finish_run(trainer, model, output, config, (train, dev, columns), _DEV_METRIC)
