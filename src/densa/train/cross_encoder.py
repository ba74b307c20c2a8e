"""Cross-encoder (reranker) training on (question, positive, hard negatives) examples.

Starts from a bi-encoder's transformer weights (default: the bundled MiniLM) with a fresh
one-logit head. Two losses:

* ``listwise`` (default): for each (question, positive) the model must pick the positive out
  of the question's hard negatives plus ``in_batch_negatives`` passages of other questions in
  the batch (softmax cross-entropy; sentence-transformers' cross-encoder
  ``MultipleNegativesRankingLoss``). Every step compares the positive with its competitors,
  which is what reranking needs.
* ``bce``: pointwise binary cross-entropy on positives (1) and hard negatives (0)
  (Nogueira & Cho 2019). On SciFact's ~800 training questions one epoch of it stayed near a
  constant predictor, where two epochs of ``listwise`` learned (README, "Adapt to your domain").
* ``distill``: listwise distillation from the ranking that mined the negatives (the teacher:
  BM25, dense or a fused ranking, whose scores ``densa mine-negatives`` writes). For each
  (question, positive) the list is the positive and the question's hard negatives; the target
  is ``softmax(t / temperature)`` over the list, where ``t`` is the teacher's scores z-scored
  over the list and the positive is lifted one unit above the list's best, so the judged
  answer stays first and the negatives keep the teacher's order and margins. Loss: the
  cross-entropy between that target and the model's softmax (ListNet, Cao et al. 2007;
  sentence-transformers' ``ListNetLoss``), as in RocketQAv2's listwise distillation (Ren et
  al. 2021). Each negative then teaches how far below the answer it belongs, not only that
  it is below.

The output folder loads as a sentence-transformers ``CrossEncoder`` and in
``densa search --rerank``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
    loss: Literal["listwise", "bce", "distill"] = "listwise"
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    negatives_per_question: int = 4
    in_batch_negatives: int = 2
    max_length: int = 192
    temperature: float = 1.0
    dev_fraction: float = 0.1
    eval_steps: int = 100
    save_steps: int = 100
    logging_steps: int = 20
    seed: int = 42

    def __post_init__(self) -> None:
        if self.loss not in ("listwise", "bce", "distill"):
            raise ConfigError(f"reranker loss must be 'listwise', 'bce' or 'distill', got {self.loss!r}")
        if not self.temperature > 0:
            raise ConfigError("the distillation temperature must be positive")
        if self.batch_size < 1 or self.max_length < 16:
            raise ConfigError("reranker batch_size must be >= 1 and max_length >= 16")
        if self.negatives_per_question < 0 or self.in_batch_negatives < 0:
            raise ConfigError("negative counts must be >= 0")
        if self.loss == "listwise" and self.negatives_per_question + self.in_batch_negatives == 0:
            raise ConfigError("the listwise loss needs hard or in-batch negatives")


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


def _tuples(examples: Sequence[TrainingExample], negatives: int, seed: int) -> dict[str, list[Any]]:
    """One row per (question, positive): ``query, positive, negative_1 .. negative_n``.

    A question with fewer than ``negatives`` hard negatives is topped up with hard negatives
    of other questions (random, hence easy, negatives), so every row has the same columns.
    """
    pool = [n.full_text for e in examples for n in e.hard_negatives]
    rng = random.Random(seed)
    columns: dict[str, list[Any]] = {
        "query": [],
        "positive": [],
        **{f"negative_{i + 1}": [] for i in range(negatives)},
    }
    for example in examples:
        own = [n.full_text for n in example.hard_negatives[:negatives]]
        missing = negatives - len(own)
        candidates: list[str] = []
        if missing:  # the question's own texts are never its top-up negatives
            taken = {*own, *(p.full_text for p in example.positives)}
            candidates = [text for text in pool if text not in taken]
            if len(candidates) < missing:
                raise ConfigError(
                    f"{negatives} negatives per question, but the data holds too few hard "
                    "negatives to top up questions that lack them; lower negatives_per_question"
                )
        for positive in example.positives:
            extra = rng.sample(candidates, missing) if missing else []
            columns["query"].append(example.question)
            columns["positive"].append(positive.full_text)
            for i, text in enumerate(own + extra):
                columns[f"negative_{i + 1}"].append(text)
    return columns


def _teacher_lists(
    examples: Sequence[TrainingExample], negatives: int, temperature: float
) -> dict[str, list[Any]]:
    """One row per (question, positive): ``query, docs, labels`` for the ``distill`` loss.

    ``labels`` are ListNet's logits of the target distribution (see the module docstring).
    """
    columns: dict[str, list[Any]] = {"query": [], "docs": [], "labels": []}
    for example in examples:
        own = example.hard_negatives[:negatives]
        if not own:
            continue
        if any(n.score is None for n in own):
            raise ConfigError(
                f"the distill loss needs each hard negative's teacher score; question "
                f"{example.id or example.question!r} has a negative without one "
                "(mine with `densa mine-negatives`, which writes them)"
            )
        scores = [float(n.score) for n in own if n.score is not None]
        mean = sum(scores) / len(scores)
        spread = math.sqrt(sum((x - mean) ** 2 for x in scores) / len(scores)) or 1.0
        z = [(x - mean) / spread for x in scores]
        top = max(z) + 1.0
        for positive in example.positives:
            columns["query"].append(example.question)
            columns["docs"].append([positive.full_text, *(n.full_text for n in own)])
            columns["labels"].append([x / temperature for x in (top, *z)])
    if not columns["query"]:
        raise ConfigError("the distill loss needs questions with hard negatives")
    return columns


def train_reranker(
    examples: Sequence[TrainingExample], output: str | Path, config: RerankerConfig, *, progress: bool = True
) -> Path:
    """Train a cross-encoder on DPR-format examples (which need hard negatives) into ``output``."""
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
    from sentence_transformers.cross_encoder.losses import (
        BinaryCrossEntropyLoss,
        ListNetLoss,
        MultipleNegativesRankingLoss,
    )

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
    arguments = shared_arguments(output, config, has_dev=bool(samples), progress=progress)
    if config.loss == "listwise":  # a question's other positive must not be its in-batch negative
        arguments["batch_sampler"] = BatchSamplers.NO_DUPLICATES
    args = CrossEncoderTrainingArguments(**arguments)
    loss: Any
    if config.loss == "listwise":
        columns = _tuples(train, config.negatives_per_question, config.seed)
        loss = MultipleNegativesRankingLoss(model, num_negatives=config.in_batch_negatives)
    elif config.loss == "distill":
        columns = _teacher_lists(train, config.negatives_per_question, config.temperature)
        loss = ListNetLoss(model)
    else:
        columns = _pairs(train, config.negatives_per_question)
        loss = BinaryCrossEntropyLoss(model)
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(columns),
        loss=loss,
        evaluator=evaluator,
    )
    run_and_save(trainer, model, output, config, {"train": len(train), "dev": len(dev)}, _DEV_METRIC)
    return output
