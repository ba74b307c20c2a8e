"""SPLADE training on sentence-transformers' sparse-encoder trainer.

Contrastive loss over sparse dot products with in-batch and hard negatives, plus FLOPS
regularisation (Paria et al. 2020; SPLADE, Formal et al. 2021) on document and query weights
separately, which is what makes the vectors sparse. Training starts from a SPLADE folder, a
masked LM, or a bi-encoder without an MLM head (then initialised from its tied input
embeddings, see :func:`densa.encode.splade.new_splade_model`). ``inference_free`` trains the
query lookup table alongside (its own learning rate, no query regulariser: a query costs no
forward pass). Same DPR-format data, dev nDCG@10, checkpoints and artifacts as ``densa train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densa.encode.config import DEFAULT_MODEL
from densa.encode.model_files import resolve_model_path
from densa.encode.splade import is_splade_model, new_splade_model
from densa.errors import ConfigError
from densa.train.bi_encoder import DEV_METRICS, TrainResult, dev_collection, finish_run, prepare_run
from densa.train.data import TrainingExample
from densa.train.runs import check_config, shared_arguments

__all__ = ["SpladeTrainConfig", "train_splade"]

_DEV_METRIC = "eval_dev_dot_ndcg@10"
_INIT_TEXTS = 1000  # passages of the training data that set a new head's bias and the query IDF


@dataclass(frozen=True)
class SpladeTrainConfig:
    """SPLADE training options (the names and meanings of :class:`~densa.train.TrainConfig`).

    Parameters
    ----------
    document_regularizer, query_regularizer
        FLOPS weights on document and query term weights (larger: sparser).
    terms
        For a base without an MLM head: terms an average passage keeps at the start.
    inference_free
        Queries weighted by a trained lookup table instead of the encoder.
    lookup_learning_rate
        Learning rate of that table.
    """

    base: str = DEFAULT_MODEL
    max_length: int = 256
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    hard_negatives: int = 1
    document_regularizer: float = 3e-5
    query_regularizer: float = 5e-5
    terms: int = 128
    inference_free: bool = False
    lookup_learning_rate: float = 1e-3
    dev_fraction: float = 0.1
    eval_steps: int = 50
    save_steps: int = 50
    logging_steps: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        check_config(self)
        if self.document_regularizer < 0 or self.query_regularizer < 0 or self.terms < 1:
            raise ConfigError("the regularisers must be >= 0 and terms positive")


def _texts(examples: Sequence[TrainingExample]) -> list[str]:
    seen = dict.fromkeys(p.full_text for e in examples for p in (*e.positives, *e.hard_negatives))
    return list(seen)[:_INIT_TEXTS]


def _model(examples: Sequence[TrainingExample], config: SpladeTrainConfig) -> tuple[Any, list[str]]:
    from sentence_transformers import SparseEncoder

    path = resolve_model_path(config.base)
    if is_splade_model(path):
        return SparseEncoder(str(path), local_files_only=True), []
    return new_splade_model(
        config.base,
        texts=_texts(examples),
        terms=config.terms,
        max_length=config.max_length,
        inference_free=config.inference_free,
    )


def _dev_evaluator(dev: Sequence[TrainingExample], train: Sequence[TrainingExample]) -> Any:
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    return SparseInformationRetrievalEvaluator(*dev_collection(dev, train), **DEV_METRICS)


def train_splade(
    examples: Sequence[TrainingExample],
    output: str | Path,
    config: SpladeTrainConfig,
    *,
    progress: bool = True,
) -> tuple[TrainResult, list[str]]:
    """Train a SPLADE model on DPR-format examples and save it to ``output`` (a
    sentence-transformers ``SparseEncoder`` folder); returns the result and notes on how a new
    model was initialised. A second call with the same output resumes from the last checkpoint."""
    from datasets import Dataset
    from sentence_transformers import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    output, train, dev, columns = prepare_run(examples, output, config)
    model, notes = _model(train, config)
    routed = config.inference_free or any("inference-free" in n for n in notes)
    extra: dict[str, Any] = {}
    if routed:
        extra["router_mapping"] = {c: "query" if c == "query" else "document" for c in columns}
        extra["learning_rate_mapping"] = {r"sub_modules\.query\..*": config.lookup_learning_rate}
    args = SparseEncoderTrainingArguments(
        **shared_arguments(output, config, has_dev=bool(dev), progress=progress),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        **extra,
    )
    loss = SpladeLoss(
        model,
        loss=SparseMultipleNegativesRankingLoss(model),
        document_regularizer_weight=config.document_regularizer,
        query_regularizer_weight=0.0 if routed else config.query_regularizer,
    )
    trainer = SparseEncoderTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(columns),
        loss=loss,
        evaluator=_dev_evaluator(dev, train) if dev else None,
    )
    return finish_run(trainer, model, output, config, (train, dev, columns), _DEV_METRIC), notes
