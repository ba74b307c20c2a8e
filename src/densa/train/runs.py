"""Trainer plumbing shared by the bi-encoder and cross-encoder trainers: the common
training arguments, resuming from the last checkpoint, and the artifacts written beside
the model (``training.png`` and ``densa_training.json``)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from densa.train.plot import plot_training

__all__ = ["RunSummary", "check_config", "last_checkpoint", "run_and_save", "shared_arguments"]

CHECKPOINTS = "checkpoints"


def last_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` folder the trainer left in ``folder``, if any."""
    if not folder.is_dir():
        return None
    steps = [
        (int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit()
    ]
    return str(max(steps)[1]) if steps else None


def check_config(config: Any) -> None:
    """The checks every trainer's config shares (fields it does not have are skipped)."""
    from densa.errors import ConfigError

    if config.batch_size < 2:
        raise ConfigError("batch_size must be at least 2 (in-batch negatives)")
    if config.learning_rate <= 0 or getattr(config, "temperature", 1.0) <= 0:
        raise ConfigError("temperature and learning_rate must be positive")
    if getattr(config, "hard_negatives", 0) < 0:
        raise ConfigError("hard_negatives must be >= 0")
    if not 0 <= config.dev_fraction < 1:
        raise ConfigError("dev_fraction must be in [0, 1)")
    if getattr(config, "keep_best", False):
        if config.dev_fraction == 0:
            raise ConfigError("keep_best needs a dev split (dev_fraction > 0)")
        if config.save_steps % config.eval_steps:
            raise ConfigError("keep_best: save_steps must be a multiple of eval_steps")


def shared_arguments(
    output: Path, config: Any, *, has_dev: bool, progress: bool, dev_metric: str | None = None
) -> dict[str, Any]:
    """Training arguments both trainers take from their config (same field names); with
    ``keep_best`` in the config, the checkpoint best on ``dev_metric`` is loaded at the end."""
    import torch

    keep_best = bool(getattr(config, "keep_best", False)) and has_dev and dev_metric is not None
    return {
        "load_best_model_at_end": keep_best,
        "metric_for_best_model": dev_metric if keep_best else None,
        "greater_is_better": True if keep_best else None,
        "output_dir": str(output / CHECKPOINTS),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "warmup_ratio": config.warmup_ratio,
        "eval_strategy": "steps" if has_dev else "no",
        "eval_steps": config.eval_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": 2,
        "logging_steps": config.logging_steps,
        "seed": config.seed,
        "data_seed": config.seed,
        "report_to": "none",
        "disable_tqdm": not progress,
        "dataloader_pin_memory": bool(torch.cuda.is_available()),
    }


class RunSummary:
    """What a finished run logged: steps, wall time of this run, history, last dev score."""

    def __init__(
        self, steps: int, seconds: float, history: list[dict[str, Any]], dev_score: float | None
    ) -> None:
        self.steps = steps
        self.seconds = seconds
        self.history = history
        self.dev_score = dev_score


def run_and_save(
    trainer: Any, model: Any, output: Path, config: Any, examples: dict[str, int], dev_metric: str
) -> RunSummary:
    """Train (resuming from the last checkpoint), save the model and the run's artifacts."""
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last_checkpoint(output / CHECKPOINTS))
    seconds = time.perf_counter() - start
    model.save(str(output))
    history = [dict(entry) for entry in trainer.state.log_history]
    scores = [e[dev_metric] for e in history if dev_metric in e]
    plot_training(history, output / "training.png", metric=dev_metric)
    best = trainer.state.best_metric if trainer.args.load_best_model_at_end else None
    dev_score = best if best is not None else (scores[-1] if scores else None)
    summary = RunSummary(trainer.state.global_step, seconds, history, dev_score)
    record = {
        "config": asdict(config),
        "examples": examples,
        "steps": summary.steps,
        "seconds_this_run": seconds,
        "dev_ndcg@10": summary.dev_score,
        # the checkpoint whose weights were saved (keep_best), by name: older ones are deleted
        "kept_checkpoint": Path(trainer.state.best_model_checkpoint).name if best is not None else None,
        "history": history,
    }
    (output / "densa_training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return summary
