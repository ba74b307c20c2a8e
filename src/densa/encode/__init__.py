"""Encoder stage: turn queries and passages into vectors."""

from densa.encode.config import DEFAULT_MODEL, EncoderConfig, EncoderSpec, Pooling, Similarity
from densa.encode.encoder import Encoder, SentenceTransformerEncoder, l2_normalize, load_sentence_transformer
from densa.encode.model_files import fingerprint, resolve_model_path

__all__ = [
    "DEFAULT_MODEL",
    "Encoder",
    "EncoderConfig",
    "EncoderSpec",
    "Pooling",
    "SentenceTransformerEncoder",
    "Similarity",
    "fingerprint",
    "l2_normalize",
    "load_sentence_transformer",
    "resolve_model_path",
]
