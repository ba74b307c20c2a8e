"""Bi-encoders: the :class:`Encoder` protocol and its sentence-transformers implementation.

A bi-encoder maps queries and passages independently to vectors whose inner product
is their relevance score (Reimers & Gurevych 2019, Sentence-BERT; Karpukhin et al. 2020,
DPR). Passages are encoded offline; a query costs one forward pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

from densa.encode.config import Calibration, EncoderConfig, EncoderSpec, Pooling, Similarity
from densa.encode.model_files import (
    fingerprint,
    is_sentence_transformers_folder,
    resolve_model_path,
)
from densa.encode.pooling import pooling_from_st, pooling_module
from densa.errors import ConfigError, DensaError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "Encoder",
    "SentenceTransformerEncoder",
    "backend_agreement",
    "count_longer",
    "l2_normalize",
    "load_sentence_transformer",
    "make_encoder",
]

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into vectors of shape ``(n, dim)``, float32."""

    @property
    def spec(self) -> EncoderSpec: ...

    @property
    def tokenizer(self) -> Any:
        """The passage tower's Hugging Face tokenizer (used to chunk long documents)."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> Vectors: ...

    def encode_documents(self, texts: Sequence[str]) -> Vectors: ...

    def count_truncated(self, texts: Sequence[str]) -> int: ...


def count_longer(tokenizer: Any, texts: Sequence[str], limit: int) -> int:
    """How many of ``texts`` have more than ``limit`` tokens (special tokens included); a long
    text is tokenised only as far as ``limit + 1``."""
    lengths = tokenizer(list(texts), truncation=True, max_length=limit + 1, return_length=True)["length"]
    return int(sum(1 for n in lengths if n > limit))


def count_over_limit(tokenizer: Any, spec: EncoderSpec, texts: Sequence[str]) -> int:
    """How many of ``texts`` (with the passage prefix) exceed ``spec.max_length`` tokens."""
    return count_longer(tokenizer, [spec.passage_prefix + t for t in texts], spec.max_length)


def l2_normalize(vectors: Vectors) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero).

    Examples
    --------
    >>> l2_normalize(np.array([[3.0, 4.0]], dtype=np.float32)).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalized: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalized


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_sentence_transformer(
    path: Path, pooling: Pooling | None, max_length: int | None, device: str | None = None
) -> SentenceTransformer:
    """A sentence-transformers model from a local folder: its own pipeline, or, with ``pooling``,
    its transformer weights under that pooling (a plain transformers folder needs one)."""
    from sentence_transformers import SentenceTransformer

    if pooling is None:
        if not is_sentence_transformers_folder(path):
            raise DensaError(
                f"{path} is a plain transformers folder: choose a pooling (cls, mean, max, last-token)"
            )
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    else:
        from sentence_transformers.base.modules import Transformer

        transformer = Transformer(str(path), max_seq_length=max_length or _folder_max_length(path))
        model = SentenceTransformer(
            modules=[transformer, pooling_module(pooling, transformer.get_embedding_dimension())],
            device=device,
        )
    if max_length is not None:
        model.max_seq_length = max_length
    return model


class SentenceTransformerEncoder:
    """A bi-encoder built on sentence-transformers, with one or two towers.

    Parameters
    ----------
    config
        What to load and how to encode.
    show_progress
        Show a progress bar while encoding documents.
    """

    def __init__(self, config: EncoderConfig | None = None, *, show_progress: bool = False) -> None:
        config = config or EncoderConfig()
        self.config = config
        self.show_progress = show_progress
        device = config.device or _default_device()
        path = resolve_model_path(config.model)
        self._doc_model = load_sentence_transformer(path, config.pooling, config.max_length, device)
        self._query_model = self._doc_model
        query_fp: str | None = None
        if config.query_model is not None:
            qpath = resolve_model_path(config.query_model)
            self._query_model = load_sentence_transformer(qpath, config.pooling, config.max_length, device)
            query_fp = fingerprint(qpath)
        pooling = pooling_from_st(self._doc_model)
        similarity = config.similarity or _model_similarity(self._doc_model)
        full_dim = int(self._doc_model.get_embedding_dimension() or 0)
        if self._query_model is not self._doc_model:
            qdim = self._query_model.get_embedding_dimension()
            if qdim != full_dim:
                raise DensaError(f"query tower has dimension {qdim}, passage tower {full_dim}")
        if config.dim is not None and config.dim > full_dim:
            raise DensaError(f"dim={config.dim} is larger than the model's dimension {full_dim}")
        self._spec = EncoderSpec(
            model=config.model,
            fingerprint=fingerprint(path),
            query_model=config.query_model,
            query_fingerprint=query_fp,
            pooling=pooling,
            similarity=similarity,
            normalize=similarity == "cosine",
            query_prefix=config.query_prefix,
            passage_prefix=config.passage_prefix,
            max_length=int(self._doc_model.max_seq_length or self._doc_model.tokenizer.model_max_length),
            dim=config.dim or full_dim,
            backend=config.backend,
        )

    @property
    def spec(self) -> EncoderSpec:
        return self._spec

    @property
    def tokenizer(self) -> Any:
        return self._doc_model.tokenizer

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        """Query vectors, shape ``(len(texts), dim)``.

        Uses the model's query route (``encode_query``), so a folder with separate query and
        document towers (a sentence-transformers ``Router``) encodes queries with its query
        tower; ``query_prefix``, when set, replaces the model's own query prompt.
        """
        model = self._query_model
        fn = model.encode if self._query_model is not self._doc_model else model.encode_query
        return self._encode(fn, list(texts), self._spec.query_prefix, progress=False)

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        """Passage vectors, shape ``(len(texts), dim)``; batches are sorted by length."""
        fn = self._doc_model.encode_document
        return self._encode(fn, list(texts), self._spec.passage_prefix, progress=self.show_progress)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many passages exceed the model's token limit (and would lose their tail)."""
        return count_over_limit(self.tokenizer, self._spec, texts)

    def _encode(self, encode: Any, texts: list[str], prefix: str, progress: bool) -> Vectors:
        if not texts:
            return np.zeros((0, self._spec.dim), dtype=np.float32)
        import torch

        device = "cuda" if str(self._doc_model.device).startswith("cuda") else "cpu"
        with torch.autocast(device, dtype=torch.bfloat16, enabled=self.config.backend == "torch-bf16"):
            vectors = encode(
                texts,
                prompt=prefix or None,
                batch_size=self.config.batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=False,
            ).astype(np.float32)
        vectors = vectors[:, : self._spec.dim]
        if self._spec.normalize:
            vectors = l2_normalize(vectors)
        return np.ascontiguousarray(vectors)


def make_encoder(config: EncoderConfig | None = None, *, calibration: Calibration | None = None) -> Encoder:
    """The encoder ``config`` describes, on its backend (torch, torch-bf16, onnx, onnx-int8,
    openvino, openvino-int8); a static model folder gives a :class:`~densa.encode.static.StaticEncoder`.

    ``calibration``: passages (or a function returning them) that calibrate ``openvino-int8``
    the first time a model is quantised; ignored by the other backends and once cached.
    """
    config = config or EncoderConfig()
    from densa.encode.onnx import OnnxEncoder, Runtime  # no optional library imported here
    from densa.encode.static import StaticEncoder, is_static_model

    if is_static_model(resolve_model_path(config.model)):
        if config.backend not in ("torch", "static"):
            raise ConfigError(f"{config.model} is a static model: it has no {config.backend} backend")
        return StaticEncoder(config)
    if config.backend == "static":
        raise ConfigError(
            f"backend static needs a static model folder (densa distill); {config.model} is not one"
        )

    if config.backend in get_args(Runtime):
        torch_encoder = SentenceTransformerEncoder(config)
        model_dir = resolve_model_path(config.model)
        runtime = cast(Runtime, config.backend)  # just checked
        return OnnxEncoder.from_torch(torch_encoder, model_dir, runtime=runtime, calibration=calibration)
    return SentenceTransformerEncoder(config)


def backend_agreement(encoder: Encoder, config: EncoderConfig, texts: Sequence[str]) -> float:
    """Mean cosine between ``encoder``'s passage vectors (built from ``config``) and fp32 torch
    ones for ``texts`` (1.0: identical directions); check it before a bulk run on another backend."""
    from dataclasses import replace

    candidate = encoder.encode_documents(texts)
    reference = SentenceTransformerEncoder(replace(config, backend="torch")).encode_documents(texts)
    cosines = (l2_normalize(candidate) * l2_normalize(reference)).sum(axis=1)
    return float(cosines.mean())


def _folder_max_length(path: Path) -> int | None:
    """The token limit a sentence-transformers folder declares, if any."""
    config = path / "sentence_bert_config.json"
    if not config.is_file():
        return None
    value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    return int(value) if value else None


def _model_similarity(model: Any) -> Similarity:
    name = getattr(model, "similarity_fn_name", None)
    if name in ("dot", "dot_product"):
        return "dot"
    return "cosine"
