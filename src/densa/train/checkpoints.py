"""Trainer plumbing shared by the bi-encoder and cross-encoder trainers."""

from __future__ import annotations

from pathlib import Path

__all__ = ["cuda_available", "last_checkpoint"]


def last_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` folder the trainer left in ``folder``, if any."""
    if not folder.is_dir():
        return None
    steps = [
        (int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit()
    ]
    return str(max(steps)[1]) if steps else None


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
