"""Learned sparse retrieval (SPLADE, Formal et al. 2021): a text as weights over the vocabulary.

A masked-language-model head scores every vocabulary term at every token; SPLADE keeps
``log(1 + relu(logit))``, max-pooled over the tokens, so a passage becomes a sparse vector of
term weights (its own words and the ones it implies: *cardiac* for *heart attack*) that an
inverted index serves like BM25. Models are sentence-transformers'
:class:`~sentence_transformers.SparseEncoder` folders (``Transformer`` with the fill-mask task
and ``SpladePooling``); a masked-LM folder without them loads the same way.

:func:`new_splade_model` starts one from any BERT-style encoder. A bi-encoder such as the bundled
MiniLM ships no MLM head; densa then initialises it from the tied input embeddings (the
decoder *is* the word embedding matrix, the transform starts as the identity) and sets the
output bias so that an average passage keeps about ``terms`` terms, special tokens never: a
lexical-plus-expansion model before any training, which :mod:`densa.train.sparse` then trains.
The *inference-free* variant (``inference_free=True``, Geng et al. 2024) weights query tokens
by a learned lookup table instead of running the encoder on queries: sentence-transformers'
``SparseStaticEmbedding`` behind a ``Router``, initialised with the corpus's IDF.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from densa.encode.encoder import count_longer
from densa.encode.model_files import backbone_folder, fingerprint, resolve_model_path
from densa.errors import ConfigError, DensaError

__all__ = ["SpladeEncoder", "SpladeSpec", "is_splade_model", "new_splade_model"]

_ST_CONFIG = "config_sentence_transformers.json"
_SPECIAL_BIAS = -100.0  # special and [unused] tokens: never a term
_BIAS_TEXTS = 64  # texts the initial bias is set on (the MLM head over every token is costly)


@dataclass(frozen=True)
class SpladeSpec:
    """What a SPLADE channel records about its model."""

    model: str
    fingerprint: str
    vocabulary: int
    max_length: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "vocabulary": self.vocabulary,
            "max_length": self.max_length,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpladeSpec:
        return cls(
            str(data["model"]), str(data["fingerprint"]), int(data["vocabulary"]), data.get("max_length")
        )


def is_splade_model(path: Path) -> bool:
    """Whether ``path`` holds a sentence-transformers sparse encoder with SPLADE pooling."""
    if not (path / "modules.json").is_file():
        return False
    texts = [
        p.read_text(encoding="utf-8", errors="replace")
        for p in (path / "modules.json", path / "router_config.json")
        if p.is_file()
    ]
    named = any("SpladePooling" in p.name for p in path.iterdir() if p.is_dir())
    return named or any("SpladePooling" in t or "splade_pooling" in t for t in texts)


def _has_mlm_head(folder: Path) -> bool:
    from safetensors import safe_open

    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), "np") as f:
            names = list(f.keys())  # a safetensors handle is not iterable
            if any(k.startswith(("cls.predictions.transform", "lm_head", "vocab_transform")) for k in names):
                return True
    return False


def _init_head_from_embeddings(auto_model: Any, tokenizer: Any, texts: Sequence[str], terms: int) -> None:
    """A BERT MLM head from the tied input embeddings: identity transform, a bias that keeps
    about ``terms`` terms of an average text, special tokens off."""
    import torch

    head = getattr(getattr(auto_model, "cls", None), "predictions", None)
    if head is None:
        raise DensaError(
            f"{type(auto_model).__name__} has no MLM head and is not BERT-style: densa can only initialise "
            "a BERT MLM head from the input embeddings; start from a masked-LM or SPLADE checkpoint"
        )
    hidden = head.transform.dense.in_features
    vocab = tokenizer.get_vocab()
    specials = [i for t, i in vocab.items() if t in tokenizer.all_special_tokens or t.startswith("[unused")]
    with torch.no_grad():
        head.transform.dense.weight.copy_(torch.eye(hidden))
        head.transform.dense.bias.zero_()
        head.transform.LayerNorm.weight.fill_(1.0)
        head.transform.LayerNorm.bias.zero_()
        head.bias.zero_()
        head.bias[specials] = _SPECIAL_BIAS
        auto_model.eval()
        cuts = []
        texts = texts[:_BIAS_TEXTS]
        for start in range(0, len(texts), 16):
            batch = tokenizer(
                list(texts[start : start + 16]),
                truncation=True,
                max_length=256,
                padding=True,
                return_tensors="pt",
            )
            logits = auto_model(**batch).logits.masked_fill(batch["attention_mask"][..., None] == 0, -1e4)
            pooled = logits.max(dim=1).values
            cuts.append(pooled.topk(min(terms, pooled.shape[1]), dim=1).values[:, -1])
        cut = float(torch.cat(cuts).median()) if cuts else 0.0
        head.bias -= cut
        head.bias[specials] = _SPECIAL_BIAS


def _idf(tokenizer: Any, texts: Sequence[str]) -> Any:
    """BM25's IDF of every vocabulary token over ``texts`` (a token they never hold gets the
    largest): the inference-free query weights' start."""
    import torch

    vocab = tokenizer.get_vocab()
    frequencies: Counter[int] = Counter()
    for text in texts:
        frequencies.update(set(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))))
    n = len(texts)
    table = torch.full((len(vocab),), math.log((n + 0.5) / 0.5 + 1))
    for token, f in frequencies.items():
        table[token] = math.log((n - f + 0.5) / (f + 0.5) + 1)
    specials = [i for t, i in vocab.items() if t in tokenizer.all_special_tokens or t.startswith("[unused")]
    table[specials] = 0.0
    return table


def new_splade_model(
    base: str,
    *,
    texts: Sequence[str] = (),
    terms: int = 128,
    max_length: int = 256,
    inference_free: bool = False,
    device: str | None = None,
) -> tuple[Any, list[str]]:
    """A SPLADE model on ``base`` and notes on what was initialised.

    ``texts`` (e.g. a few hundred passages of the corpus) set the output bias when the checkpoint
    has no MLM head, and the query lookup's IDF for ``inference_free``.
    """
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router, Transformer
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling

    backbone = backbone_folder(resolve_model_path(base))
    had_head = _has_mlm_head(backbone)
    transformer = Transformer(str(backbone), transformer_task="fill-mask", max_seq_length=max_length)
    notes = []
    if not had_head:
        if not texts:
            raise ConfigError(f"{base} has no MLM head: pass texts to set the initial head's bias on")
        _init_head_from_embeddings(transformer.auto_model, transformer.tokenizer, texts, terms)
        notes.append(
            f"{base} has no MLM head: initialised from the tied input embeddings (identity transform, "
            f"bias keeping about {terms} terms of a passage, special tokens off)"
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not inference_free:
        return SparseEncoder(modules=[transformer, SpladePooling("max")], device=device), notes
    if not texts:
        raise ConfigError("an inference-free SPLADE model needs texts to start its query weights from (IDF)")
    lookup = SparseStaticEmbedding(
        tokenizer=transformer.tokenizer, weight=_idf(transformer.tokenizer, texts), frozen=False
    )
    router = Router.for_query_document(
        query_modules=[lookup], document_modules=[transformer, SpladePooling("max")]
    )
    notes.append(
        f"inference-free: query tokens weighted by a lookup table, started from IDF over {len(texts)} texts"
    )
    return SparseEncoder(modules=[router], device=device, similarity_fn_name="dot"), notes


class SpladeEncoder:
    """Encodes queries and documents into sparse term weights (SciPy CSR, one row a text).

    Parameters
    ----------
    model
        A SPLADE folder (a sentence-transformers sparse encoder).
    """

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        import torch
        from sentence_transformers import SparseEncoder

        path = resolve_model_path(model)
        if not is_splade_model(path):
            raise DensaError(
                f"{path} is not a SPLADE model folder (a sentence-transformers sparse encoder with "
                "SpladePooling); train one with `densa train --family splade`"
            )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = SparseEncoder(str(path), device=device, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise DensaError(f"{path}: cannot load it as a SPLADE model ({exc})") from exc
        self.batch_size = batch_size
        # the pooled dimension is known once a text has gone through (SpladePooling sets it)
        vocabulary = self.model.encode_document(["a"], convert_to_sparse_tensor=True).shape[1]
        # an absolute path: the index finds the model again from any working directory
        self._spec = SpladeSpec(
            str(path.resolve()), fingerprint(path), int(vocabulary), self.model.max_seq_length
        )

    @property
    def spec(self) -> SpladeSpec:
        return self._spec

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def _csr(self, tensor: Any, n: int) -> Any:
        from scipy.sparse import csr_matrix

        coalesced = tensor.coalesce().cpu()
        rows, cols = coalesced.indices().numpy()
        values = coalesced.values().float().numpy()
        matrix = csr_matrix((values, (rows, cols)), shape=(n, self._spec.vocabulary), dtype=np.float32)
        matrix.sum_duplicates()
        return matrix

    def encode_queries(self, texts: Sequence[str]) -> Any:
        if not texts:
            return self._empty()
        found = self.model.encode_query(
            list(texts), batch_size=self.batch_size, convert_to_sparse_tensor=True
        )
        return self._csr(found, len(texts))

    def encode_documents(self, texts: Sequence[str]) -> Any:
        if not texts:
            return self._empty()
        found = self.model.encode_document(
            list(texts), batch_size=self.batch_size, convert_to_sparse_tensor=True
        )
        return self._csr(found, len(texts))

    def _empty(self) -> Any:
        from scipy.sparse import csr_matrix

        return csr_matrix((0, self._spec.vocabulary), dtype=np.float32)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many texts have more tokens than the model's limit (their tail is not encoded)."""
        limit = self._spec.max_length
        return count_longer(self.tokenizer, texts, limit) if limit else 0
