"""One encoder called from several threads at once (a server's worker threads)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.encode.config import EncoderSpec
from densa.encode.encoder import Encoder

__all__ = ["LockedEncoder", "for_threads"]


class LockedEncoder:
    """An :class:`Encoder` whose calls run one at a time (Hugging Face fast tokenizers
    raise "Already borrowed" when one tokenizer is used from several threads at once)."""

    def __init__(self, inner: Encoder) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    @property
    def spec(self) -> EncoderSpec:
        return self._inner.spec

    @property
    def tokenizer(self) -> Any:
        return self._inner.tokenizer

    def encode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            return self._inner.encode_queries(texts)

    def encode_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            return self._inner.encode_documents(texts)

    def count_truncated(self, texts: Sequence[str]) -> int:
        with self._lock:
            return self._inner.count_truncated(texts)


def for_threads(encoder: Encoder, threads: int) -> Encoder:
    """``encoder`` made safe for ``threads`` threads calling at once: an exported graph runs
    one request per thread side by side (:meth:`OnnxEncoder.parallel`); any other encoder
    runs one call at a time behind a lock (torch already spreads one call over the cores)."""
    from densa.encode.onnx import OnnxEncoder  # imports no optional library

    if isinstance(encoder, OnnxEncoder) and threads > 1:
        return encoder.parallel(threads)
    return LockedEncoder(encoder)
