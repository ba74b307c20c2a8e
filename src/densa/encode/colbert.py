"""Late interaction (ColBERT, Khattab & Zaharia 2020): one vector per token, scored by MaxSim.

A query and a passage are encoded separately into one L2-normalised vector per token; the
score is the sum over query tokens of the best dot product with any passage token::

    score(q, d) = sum_i  max_j  q_i . d_j

Models are sentence-transformers' :class:`~sentence_transformers.MultiVectorEncoder`, which
loads every folder format in use: its own, PyLate's (``config_sentence_transformers.json`` with
``query_length`` / ``document_length``) and Stanford ``colbert-ai``'s (``HF_ColBERT`` with an
inline ``linear.weight`` and ``artifact.metadata``). It applies the paper's tokenisation: marker
tokens, queries padded with ``[MASK]`` to a fixed length (query augmentation), punctuation
dropped from documents, the projection to the model's token dimension.

:func:`new_colbert_model` starts one from any bi-encoder or transformer folder (densa trains it,
see :mod:`densa.train.colbert`), so a trained model loads in plain sentence-transformers too.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.encode.encoder import count_longer
from densa.encode.model_files import backbone_folder, fingerprint, resolve_model_path
from densa.errors import DensaError

__all__ = [
    "ColbertEncoder",
    "ColbertSpec",
    "TokenVectors",
    "is_colbert_model",
    "maxsim",
    "new_colbert_model",
]

#: The marker tokens of queries and documents (in BERT vocabularies; the paper's [Q] and [D]).
MARKERS = {"query": "[unused0] ", "document": "[unused1] "}
_ST_CONFIG = "config_sentence_transformers.json"


@dataclass(frozen=True)
class ColbertSpec:
    """What a ColBERT channel records about its model (a different one makes other vectors)."""

    model: str
    fingerprint: str
    dim: int
    document_length: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "document_length": self.document_length,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColbertSpec:
        return cls(
            str(data["model"]), str(data["fingerprint"]), int(data["dim"]), data.get("document_length")
        )


@dataclass(frozen=True)
class TokenVectors:
    """Token vectors of several texts, concatenated: text ``i`` owns rows
    ``offsets[i]:offsets[i + 1]`` of ``vectors`` (float32, or float16 while a segment is built)."""

    vectors: npt.NDArray[np.floating[Any]]
    lengths: npt.NDArray[np.int64]

    @property
    def offsets(self) -> npt.NDArray[np.int64]:
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> npt.NDArray[np.floating[Any]]:
        start = int(self.lengths[:i].sum())
        return self.vectors[start : start + int(self.lengths[i])]

    @classmethod
    def from_list(cls, arrays: Sequence[npt.NDArray[np.float32]], dim: int) -> TokenVectors:
        lengths = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
        if not len(arrays) or not lengths.sum():
            return cls(np.zeros((0, dim), np.float32), lengths)
        return cls(np.concatenate(arrays).astype(np.float32, copy=False), lengths)

    @classmethod
    def concat(cls, parts: Sequence[TokenVectors], dim: int) -> TokenVectors:
        if not parts:
            return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int64))
        return cls(np.concatenate([p.vectors for p in parts]), np.concatenate([p.lengths for p in parts]))


def maxsim(query: npt.NDArray[np.float32], document: npt.NDArray[np.float32]) -> float:
    """The late-interaction score: sum over query tokens of the best dot product with a
    document token (0 for a document without tokens).

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    >>> d = np.array([[0.6, 0.8], [1.0, 0.0]], np.float32)
    >>> round(maxsim(q, d), 6)  # max(0.6, 1.0) + max(0.8, 0.0)
    1.8
    """
    if not len(document):
        return 0.0
    return float((query @ document.T).max(axis=1).sum())


def is_colbert_model(path: Path) -> bool:
    """Whether ``path`` holds a multi-vector model: sentence-transformers' own format, PyLate's,
    or Stanford ``colbert-ai``'s."""
    if not path.is_dir():
        return False
    if (path / "artifact.metadata").is_file():
        return True
    for name, markers in (
        ("modules.json", ("multi_vector_encoder", "pylate")),
        (_ST_CONFIG, ('"MultiVectorEncoder"', '"ColBERT"', '"query_length"', '"document_length"')),
        ("config.json", ('"HF_ColBERT"',)),
    ):
        file = path / name
        if file.is_file():
            text = file.read_text(encoding="utf-8", errors="replace")
            if any(marker in text for marker in markers):
                return True
    return False


def new_colbert_model(
    base: str,
    *,
    dim: int = 128,
    query_length: int = 32,
    document_length: int = 180,
    device: str | None = None,
    seed: int = 0,
) -> Any:
    """An untrained ColBERT model on ``base`` (a transformer or sentence-transformers folder):
    the paper's stack (backbone, a 128-d token projection without bias, punctuation mask on
    documents, L2 normalisation), ``[unused0]`` / ``[unused1]`` markers, queries expanded to
    ``query_length`` with ``[MASK]``. The projection starts orthogonal (seeded), so MaxSim over
    the base model's token vectors is roughly kept before training."""
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from transformers import AddedToken

    backbone = backbone_folder(resolve_model_path(base))
    transformer = Transformer(
        str(backbone),
        document_length=document_length,
        query_expansion={"strategy": "fixed", "attend": False, "length": query_length},
    )
    hidden = int(transformer.get_embedding_dimension())
    projection = Dense(
        in_features=hidden,
        out_features=dim,
        bias=False,
        activation_function=torch.nn.Identity(),
        module_input_name="token_embeddings",
    )
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(max(dim, hidden), min(dim, hidden), generator=generator)
    orthonormal, _ = torch.linalg.qr(gaussian)
    weight = orthonormal if dim >= hidden else orthonormal.T
    with torch.no_grad():
        projection.linear.weight.copy_(weight[:dim, :hidden])
    tokenizer = transformer.tokenizer
    vocab = tokenizer.get_vocab()
    markers = {task: marker for task, marker in MARKERS.items() if marker.strip() in vocab}
    if markers:
        tokenizer.add_special_tokens(
            {
                "additional_special_tokens": [
                    AddedToken(m.strip(), normalized=False, special=True) for m in markers.values()
                ]
            },
            replace_extra_special_tokens=False,
        )
    return MultiVectorEncoder(
        modules=[
            transformer,
            projection,
            MultiVectorMask(skiplist_words=list(string.punctuation)),
            Normalize(module_input_name="token_embeddings"),
        ],
        prompts=markers,
        similarity_fn_name="maxsim",
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
    )


class ColbertEncoder:
    """Encodes queries and documents into token vectors with a ColBERT model folder.

    Parameters
    ----------
    model
        A local folder (any format :func:`is_colbert_model` accepts).
    batch_size, device
        Texts per forward pass; ``cpu`` / ``cuda`` (default: cuda when present).
    document_length
        Token limit of documents (default: the model's).
    """

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        device: str | None = None,
        document_length: int | None = None,
    ) -> None:
        import torch
        from sentence_transformers import MultiVectorEncoder

        path = resolve_model_path(model)
        if not is_colbert_model(path):
            raise DensaError(
                f"{path} is not a ColBERT (multi-vector) model folder; train one with "
                "`densa train --family colbert` or point at a PyLate / colbert-ai checkpoint"
            )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = MultiVectorEncoder(str(path), device=device, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise DensaError(f"{path}: cannot load it as a ColBERT model ({exc})") from exc
        transformer: Any = self.model[0]
        if document_length is not None:
            transformer.document_length = document_length
        self.batch_size = batch_size
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise DensaError(f"{path}: the model does not say its token dimension")
        self._spec = ColbertSpec(
            model=str(path.resolve()),  # the index finds it again from any working directory
            fingerprint=fingerprint(path),
            dim=int(dim),
            document_length=getattr(transformer, "document_length", None),
        )

    @property
    def spec(self) -> ColbertSpec:
        return self._spec

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def encode_queries(self, texts: Sequence[str]) -> TokenVectors:
        found: Any = self.model.encode_query(list(texts), batch_size=self.batch_size, convert_to_numpy=True)
        return TokenVectors.from_list(found, self._spec.dim)

    def encode_documents(self, texts: Sequence[str]) -> TokenVectors:
        found: Any = self.model.encode_document(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True
        )
        return TokenVectors.from_list(found, self._spec.dim)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many texts have more tokens than the document length (their tail is not encoded)."""
        limit = self._spec.document_length or self.model.max_seq_length
        # the document marker takes one of the limit's tokens
        return count_longer(self.tokenizer, texts, limit - 1) if limit else 0
