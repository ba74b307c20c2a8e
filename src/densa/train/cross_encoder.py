"""Cross-encoder (reranker) training: binary relevance of (question, passage) pairs.

Starts from a bi-encoder's transformer weights (default: the bundled MiniLM) with a fresh
one-logit head, trained with binary cross-entropy on positives (1) and hard negatives (0)
(Nogueira & Cho 2019). The output folder loads as a sentence-transformers ``CrossEncoder``
and in ``densa search --rerank``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densa.encode.config import DEFAULT_MODEL
from densa.encode.model_files import resolve_model_path
from densa.errors import ConfigError
from densa.train.data import TrainingExample, split_dev
from densa.train.runs import run_and_save, shared_arguments

__all__ = ["RerankerConfig", "train_reranker"]

_DEV_METRIC = "eval_dev_ndcg@10"


@dataclass(frozen=True)
class RerankerConfig:
    """Cross-encoder training options (see :class:`densa.train.TrainConfig` for the shared ones)."""

    base: str = DEFAULT_MODEL
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    negatives_per_question: int = 4
    max_length: int = 256
    dev_fraction: float = 0.1
    eval_steps: int = 100
    save_steps: int = 100
    logging_steps: int = 20
    seed: int = 42

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.negatives_per_question < 0 or self.max_length < 16:
            raise ConfigError("invalid reranker training options")


def _pairs(examples: Sequence[TrainingExample], negatives: int) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
    for example in examples:
        labelled = [(p, 1.0) for p in example.positives] + [
            (n, 0.0) for n in example.hard_negatives[:negatives]
        ]
        for passage, label in labelled:
            columns["query"].append(example.question)
            columns["passage"].append(passage.full_text)
            columns["label"].append(label)
    return columns


def train_reranker(
    examples: Sequence[TrainingExample], output: str | Path, config: RerankerConfig, *, progress: bool = True
) -> Path:
    """Train a cross-encoder on DPR-format examples (which need hard negatives) into ``output``."""
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    if not any(e.hard_negatives for e in examples):
        raise ConfigError("reranker training needs hard negatives: run `densa mine-negatives` first")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train, dev = split_dev(examples, config.dev_fraction, config.seed)
    model = CrossEncoder(
        str(resolve_model_path(config.base)),
        num_labels=1,
        max_length=config.max_length,
        local_files_only=True,
    )
    # reranking is only measurable for dev questions with something to rank the positive against
    samples: list[dict[str, Any]] = [
        {
            "query": e.question,
            "positive": [p.full_text for p in e.positives],
            "negative": [n.full_text for n in e.hard_negatives],
        }
        for e in dev
        if e.hard_negatives
    ]
    evaluator = (
        CrossEncoderRerankingEvaluator(samples, at_k=10, name="dev", write_csv=False) if samples else None
    )
    args = CrossEncoderTrainingArguments(
        **shared_arguments(output, config, has_dev=bool(samples), progress=progress)
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(_pairs(train, config.negatives_per_question)),
        loss=BinaryCrossEntropyLoss(model),
        evaluator=evaluator,
    )
    run_and_save(trainer, model, output, config, {"train": len(train), "dev": len(dev)}, _DEV_METRIC)
    return output
