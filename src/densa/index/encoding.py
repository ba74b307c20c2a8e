"""Where a build encodes: batches of passages through an :class:`~densa.encode.Encoder`, here or
on a cluster (:mod:`densa.index.distributed`), in order, with resumable shards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from densa.encode.encoder import Encoder

__all__ = ["BatchRunner", "Done", "LocalRunner", "Pending", "encode_batch"]

_ENCODE_STEP = 256
#: Texts are cut to this many characters per token of the model's limit before tokenising
#: (16,384 for a 256-token model): tokens past the limit are dropped anyway, and tokenising a
#: 50 MB document whole takes minutes. A text that long is counted as over the limit.
CHARS_PER_TOKEN = 64


class Pending(Protocol):
    """A batch being encoded: ``result()`` gives its vectors and truncation count."""

    def result(self) -> tuple[npt.NDArray[np.float32], int]: ...


class BatchRunner(Protocol):
    """Where batches are encoded: in this process, or on a cluster (``densa.index.distributed``)."""

    def submit(self, passages: list[str], documents: list[str]) -> Pending: ...

    @property
    def window(self) -> int:
        """Batches allowed in flight at once."""
        ...


def encode_batch(
    encoder: Encoder,
    passages: list[str],
    documents: list[str],
    progress: Callable[[int], object] | None = None,
) -> tuple[npt.NDArray[np.float32], int]:
    """Vectors of ``passages`` in their order (encoded longest first, so each forward pass pads
    to similar lengths) and how many ``documents`` exceed the model's token limit (texts are cut
    to :data:`CHARS_PER_TOKEN` characters a token of the limit first)."""
    limit = CHARS_PER_TOKEN * encoder.spec.max_length
    passages = [p[:limit] for p in passages]
    cut = sum(1 for d in documents if len(d) > limit)
    truncated = cut + encoder.count_truncated([d for d in documents if len(d) <= limit])
    out = np.empty((len(passages), encoder.spec.dim), dtype=np.float32)
    order = sorted(range(len(passages)), key=lambda i: -len(passages[i]))
    for start in range(0, len(order), _ENCODE_STEP):
        part = order[start : start + _ENCODE_STEP]
        out[part] = encoder.encode_documents([passages[i] for i in part])
        if progress is not None:
            progress(len(part))
    return out, truncated


@dataclass(frozen=True)
class Done:
    """A batch that is already encoded (here, or read back from a shard)."""

    value: tuple[npt.NDArray[np.float32], int]

    def result(self) -> tuple[npt.NDArray[np.float32], int]:
        return self.value


class LocalRunner:
    """Encodes each batch right away in this process, reporting passages done as it goes."""

    window = 1

    def __init__(self, encoder: Encoder, progress: Callable[[int], object] | None = None) -> None:
        self.encoder = encoder
        self.progress = progress

    def submit(self, passages: list[str], documents: list[str]) -> Pending:
        return Done(encode_batch(self.encoder, passages, documents, self.progress))
