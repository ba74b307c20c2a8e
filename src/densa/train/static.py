"""Contrastive fine-tuning of a static embedding model (its token table) on DPR-format data.

The model2vec folder's table becomes sentence-transformers' ``StaticEmbedding`` (an
``EmbeddingBag`` that averages the tokens, as :class:`~densa.encode.static.StaticEncoder` does),
trained with the same InfoNCE loss, in-batch and hard negatives, as the bi-encoder (Tulkens
& van Dongen's and sentence-transformers' recipe for static retrievers: a large learning rate,
one vector a token). The result is written back in model2vec's format, so densa, model2vec and
sentence-transformers (``StaticEmbedding.from_model2vec``) all load it. Checkpoints resume.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densa.encode.model_files import resolve_model_path
from densa.encode.static import is_static_model
from densa.errors import DensaError
from densa.train.bi_encoder import TrainResult, dense_dev_evaluator, finish_run, prepare_run
from densa.train.data import TrainingExample
from densa.train.infonce import InfoNCELoss
from densa.train.runs import check_config, shared_arguments

__all__ = ["StaticTrainConfig", "train_static"]

_DEV_METRIC = "eval_dev_cosine_ndcg@10"


@dataclass(frozen=True)
class StaticTrainConfig:
    """Static fine-tuning options (names and meanings of :class:`~densa.train.TrainConfig`);
    ``base`` is a static model folder (``densa distill``)."""

    base: str = ""
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 0.05
    warmup_ratio: float = 0.1
    temperature: float = 0.05
    hard_negatives: int = 1
    dev_fraction: float = 0.1
    eval_steps: int = 50
    save_steps: int = 50
    logging_steps: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        check_config(self)


def _model(source: Path) -> Any:
    from safetensors.numpy import load_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    table = load_file(str(source / "model.safetensors"))["embeddings"].astype(np.float32)
    static = StaticEmbedding(Tokenizer.from_file(str(source / "tokenizer.json")), embedding_weights=table)
    return SentenceTransformer(modules=[static], device="cpu", similarity_fn_name="cosine")


def _save(model: Any, source: Path, output: Path) -> None:
    """The trained table in model2vec's format, beside the source's tokenizer and settings."""
    from safetensors.numpy import save_file

    table = model[0].embedding.weight.detach().cpu().numpy().astype(np.float32)
    save_file({"embeddings": np.ascontiguousarray(table)}, str(output / "model.safetensors"))
    shutil.copy(source / "tokenizer.json", output / "tokenizer.json")
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config["fine_tuned_by"] = "densa train --family static"
    (output / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for stale in ("modules.json", "config_sentence_transformers.json"):
        (output / stale).unlink(missing_ok=True)  # written by the trainer's save: model2vec's format only
    for folder in output.glob("0_StaticEmbedding"):
        shutil.rmtree(folder)


class _Saver:
    """What :func:`densa.train.runs.run_and_save` calls ``save`` on: the model2vec writer."""

    def __init__(self, model: Any, source: Path) -> None:
        self.model = model
        self.source = source

    def save(self, output: str) -> None:
        _save(self.model, self.source, Path(output))


def train_static(
    examples: Sequence[TrainingExample],
    output: str | Path,
    config: StaticTrainConfig,
    *,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune the static model ``config.base`` on ``examples``; writes a model2vec folder."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    source = resolve_model_path(config.base) if config.base else None
    if source is None or not is_static_model(source):
        raise DensaError(
            f"{config.base or '(none)'}: --family static starts from a static model folder (densa distill)"
        )
    output, train, dev, columns = prepare_run(examples, output, config)
    model = _model(source)
    args = SentenceTransformerTrainingArguments(
        **shared_arguments(output, config, has_dev=bool(dev), progress=progress),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(columns),
        loss=InfoNCELoss(model, config.temperature),
        evaluator=dense_dev_evaluator(dev, train) if dev else None,
    )
    return finish_run(trainer, _Saver(model, source), output, config, (train, dev, columns), _DEV_METRIC)
