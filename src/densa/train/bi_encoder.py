"""DPR-style bi-encoder training on sentence-transformers' trainer.

Loss: InfoNCE over in-batch negatives plus hard negatives (:mod:`densa.train.infonce`), or
its gradient-cached twin (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size
under Memory Limited Setup": sentence-transformers' ``CachedMultipleNegativesRankingLoss``)
when ``mini_batch_size`` is set, optionally wrapped in a Matryoshka loss (Kusupati et al.
2022). Batches never hold the same text twice. A dev split carved from the training
examples is scored (nDCG@10) during training; checkpoints resume after an interruption.
"""

from __future__ import annotations

import copy
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densa.encode.config import DEFAULT_MODEL, Pooling
from densa.encode.encoder import load_sentence_transformer
from densa.encode.model_files import resolve_model_path
from densa.errors import ConfigError
from densa.train.data import Passage, TrainingExample, split_dev
from densa.train.infonce import InfoNCELoss
from densa.train.runs import check_config, run_and_save, shared_arguments

__all__ = [
    "DEV_METRICS",
    "TrainConfig",
    "TrainResult",
    "build_dataset",
    "dense_dev_evaluator",
    "dev_collection",
    "finish_run",
    "prepare_run",
    "train_bi_encoder",
]


@dataclass(frozen=True)
class TrainConfig:
    """Bi-encoder training options.

    Parameters
    ----------
    base
        Model folder to start from (default: the bundled all-MiniLM-L6-v2).
    pooling
        Pooling for a plain transformers base (``None`` keeps a sentence-transformers base's).
    query_prefix, passage_prefix
        Instructions, saved in the model as its ``query`` / ``document`` prompts.
    separate_towers
        Train separate query and passage encoders (DPR), both starting from ``base``.
    epochs, max_steps
        Training length (``max_steps > 0`` overrides ``epochs``).
    batch_size
        Questions per step: each is scored against all ``batch_size (1 + hard_negatives)``
        passages of the step.
    mini_batch_size
        Gradient caching: encode in chunks of this size, so a large ``batch_size`` fits in
        memory; ``None`` encodes the whole batch at once.
    learning_rate, warmup_ratio
        AdamW learning rate with linear warm-up over this fraction of the steps.
    temperature
        InfoNCE temperature.
    hard_negatives
        Hard negatives per question (from the data; topped up from other questions').
    matryoshka_dims
        Also train these truncated dimensions (e.g. ``(384, 256, 128, 64)``).
    dev_fraction
        Share of the examples held out as the dev set.
    max_length
        Token limit while training (``None``: the model's). It is saved with the model, so
        the trained model also encodes at most this many tokens unless indexed with
        ``--max-length``.
    eval_steps, save_steps, logging_steps
        How often to score dev, checkpoint, and log the loss.
    keep_best
        Save the checkpoint with the best dev nDCG@10 instead of the last one (needs a dev
        split, and ``save_steps`` a multiple of ``eval_steps``).
    seed
        Shuffling and the dev split.
    """

    base: str = DEFAULT_MODEL
    pooling: Pooling | None = None
    query_prefix: str = ""
    passage_prefix: str = ""
    separate_towers: bool = False
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    mini_batch_size: int | None = None
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    temperature: float = 0.05
    hard_negatives: int = 1
    matryoshka_dims: tuple[int, ...] = ()
    dev_fraction: float = 0.1
    max_length: int | None = None
    eval_steps: int = 50
    save_steps: int = 50
    logging_steps: int = 10
    keep_best: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        check_config(self)
        if self.mini_batch_size is not None and self.mini_batch_size < 1:
            raise ConfigError("mini_batch_size must be positive")


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how training went."""

    output: Path
    steps: int
    seconds: float
    history: list[dict[str, float]]
    dev_ndcg: float | None


#: The dev evaluator's nDCG@10, as the trainer logs it.
_DEV_METRIC = "eval_dev_cosine_ndcg@10"


def _passage_id(passage: Passage) -> str:
    return passage.id or hashlib.sha1(passage.full_text.encode()).hexdigest()[:16]


def build_dataset(
    examples: Sequence[TrainingExample], hard_negatives: int, seed: int
) -> dict[str, list[str]]:
    """Columns ``query, positive, negative_1..h``: one row per (question, positive) pair.

    A question with fewer than ``h`` hard negatives is topped up with other questions'
    hard negatives (random, seeded), never with one of its own positives.
    """
    rng = random.Random(seed)
    pool = [n.full_text for e in examples for n in e.hard_negatives] or [
        p.full_text for e in examples for p in e.positives
    ]
    columns: dict[str, list[str]] = {"query": [], "positive": []}
    for i in range(1, hard_negatives + 1):
        columns[f"negative_{i}"] = []
    for example in examples:
        own = {p.full_text for p in example.positives}
        negatives = [n.full_text for n in example.hard_negatives if n.full_text not in own][:hard_negatives]
        while len(negatives) < hard_negatives:
            candidate = rng.choice(pool)
            if candidate not in own and candidate not in negatives:
                negatives.append(candidate)
        for positive in example.positives:
            columns["query"].append(example.question)
            columns["positive"].append(positive.full_text)
            for i, negative in enumerate(negatives, start=1):
                columns[f"negative_{i}"].append(negative)
    return columns


def prepare_run(
    examples: Sequence[TrainingExample], output: str | Path, config: Any
) -> tuple[Path, list[TrainingExample], list[TrainingExample], dict[str, list[str]]]:
    """The output folder (created), the train and dev splits, and the training columns
    (:func:`build_dataset`) that every contrastive trainer starts from."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train, dev = split_dev(examples, config.dev_fraction, config.seed)
    if not train:
        raise ConfigError("no training examples left after carving the dev split")
    return output, train, dev, build_dataset(train, config.hard_negatives, config.seed)


def finish_run(
    trainer: Any,
    model: Any,
    output: Path,
    config: Any,
    split: tuple[Sequence[TrainingExample], Sequence[TrainingExample], dict[str, list[str]]],
    dev_metric: str,
) -> TrainResult:
    """Train and save (:func:`densa.train.runs.run_and_save`) a run :func:`prepare_run` set up:
    ``split`` is its ``(train, dev, columns)``."""
    train, dev, columns = split
    examples = {"train": len(train), "dev": len(dev), "pairs": len(columns["query"])}
    run = run_and_save(trainer, model, output, config, examples, dev_metric)
    return TrainResult(output, run.steps, run.seconds, run.history, run.dev_score)


def dev_collection(
    dev: Sequence[TrainingExample], train: Sequence[TrainingExample]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, set[str]]]:
    """``(queries, corpus, relevant)`` of the dev split, for sentence-transformers' retrieval
    evaluators: the dev questions' positives and hard negatives plus, as distractors, the
    positives of up to 2,000 training questions."""
    corpus: dict[str, Any] = {}
    for example in dev:
        for passage in (*example.positives, *example.hard_negatives):
            corpus[_passage_id(passage)] = passage.full_text
    for example in train[:2000]:
        for passage in example.positives:
            corpus.setdefault(_passage_id(passage), passage.full_text)
    queries: dict[str, Any] = {f"dev{i}": e.question for i, e in enumerate(dev)}
    relevant = {f"dev{i}": {_passage_id(p) for p in e.positives} for i, e in enumerate(dev)}
    return queries, corpus, relevant


#: What the dev evaluators of every trainer report (sentence-transformers' retrieval evaluators).
DEV_METRICS: dict[str, Any] = {
    "name": "dev",
    "ndcg_at_k": [10],
    "mrr_at_k": [10],
    "accuracy_at_k": [1, 10],
    "precision_recall_at_k": [10],
    "map_at_k": [10],
    "write_csv": False,
}


def dense_dev_evaluator(
    dev: Sequence[TrainingExample],
    train: Sequence[TrainingExample],
    query_prefix: str = "",
    passage_prefix: str = "",
) -> Any:
    """sentence-transformers' retrieval evaluator (cosine nDCG@10 and more) on the dev split."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    return InformationRetrievalEvaluator(
        *dev_collection(dev, train),
        **DEV_METRICS,
        query_prompt=query_prefix or None,
        corpus_prompt=passage_prefix or None,
    )


def _model(config: TrainConfig) -> Any:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    base = load_sentence_transformer(resolve_model_path(config.base), config.pooling, config.max_length)
    prompts: dict[str, Any] = {"query": config.query_prefix, "document": config.passage_prefix}
    if not config.separate_towers:
        base.prompts = prompts
        return base
    modules: list[Any] = list(base)
    router = Router.for_query_document([copy.deepcopy(m) for m in modules], modules)
    return SentenceTransformer(modules=[router], prompts=prompts, similarity_fn_name="cosine")


def _loss(model: Any, config: TrainConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
    )

    if config.mini_batch_size is not None:
        loss: Any = CachedMultipleNegativesRankingLoss(
            model, scale=1.0 / config.temperature, mini_batch_size=config.mini_batch_size
        )
    else:
        loss = InfoNCELoss(model, config.temperature)
    if config.matryoshka_dims:
        loss = MatryoshkaLoss(model, loss, list(config.matryoshka_dims))
    return loss


def train_bi_encoder(
    examples: Sequence[TrainingExample], output: str | Path, config: TrainConfig, *, progress: bool = True
) -> TrainResult:
    """Fine-tune a bi-encoder on DPR-format examples and save it to ``output``.

    ``output`` becomes a sentence-transformers folder (loads in plain sentence-transformers
    and in ``densa index --model``), with ``training.png`` (loss and dev nDCG@10) and
    ``densa_training.json`` beside the weights. Checkpoints go to ``output/checkpoints``; a
    second call with the same output resumes from the last one.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    output, train, dev, columns = prepare_run(examples, output, config)
    model = _model(config)
    passage_columns = [c for c in columns if c != "query"]
    args = SentenceTransformerTrainingArguments(
        **shared_arguments(output, config, has_dev=bool(dev), progress=progress, dev_metric=_DEV_METRIC),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        router_mapping={"query": "query", **dict.fromkeys(passage_columns, "document")}
        if config.separate_towers
        else {},
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(columns),
        loss=_loss(model, config),
        evaluator=dense_dev_evaluator(dev, train, config.query_prefix, config.passage_prefix)
        if dev
        else None,
    )
    return finish_run(trainer, model, output, config, (train, dev, columns), _DEV_METRIC)
