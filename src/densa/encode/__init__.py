"""Encoder stage: turn queries and passages into vectors."""

from densa.encode.config import (
    CALIBRATION_TEXTS,
    DEFAULT_MODEL,
    Backend,
    Calibration,
    EncoderConfig,
    EncoderSpec,
    Pooling,
    Similarity,
)
from densa.encode.encoder import (
    Encoder,
    SentenceTransformerEncoder,
    backend_agreement,
    l2_normalize,
    load_sentence_transformer,
    make_encoder,
)
from densa.encode.model_files import fingerprint, resolve_model_path

__all__ = [
    "CALIBRATION_TEXTS",
    "DEFAULT_MODEL",
    "Backend",
    "Calibration",
    "Encoder",
    "EncoderConfig",
    "EncoderSpec",
    "Pooling",
    "SentenceTransformerEncoder",
    "Similarity",
    "backend_agreement",
    "fingerprint",
    "l2_normalize",
    "load_sentence_transformer",
    "make_encoder",
    "resolve_model_path",
]
