"""Test doubles and builders shared by the test suite."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.encode import EncoderSpec, l2_normalize

FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "tiny"
_WORD = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """A deterministic bag-of-words encoder: each word hashes to one of ``dim`` buckets.

    Fast and exact, so index and search tests can reason about which documents match.
    """

    def __init__(self, dim: int = 64, name: str = "hashing", jitter: bool = False) -> None:
        """``jitter`` adds a small per-text offset, so that no two different texts score exactly
        alike: HNSW computes a distance in batches whose float rounding depends on the graph, so
        the order of exact ties is not defined there."""
        self._jitter = jitter
        self._spec = EncoderSpec(
            model=name,
            fingerprint=hashlib.sha256(name.encode()).hexdigest()[:16],
            query_model=None,
            query_fingerprint=None,
            pooling="mean",
            similarity="cosine",
            normalize=True,
            query_prefix="",
            passage_prefix="",
            max_length=16,
            dim=dim,
        )
        self.encoded_documents = 0
        self._tokenizer: Any = None

    @property
    def spec(self) -> EncoderSpec:
        return self._spec

    def _vectors(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self._spec.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % self._spec.dim
                out[row, bucket] += 1.0
            if self._jitter:
                out[row] += int(hashlib.md5(text.encode()).hexdigest()[:6], 16) / 2**24 * 0.05
        return l2_normalize(out)

    @property
    def tokenizer(self) -> Any:
        """MiniLM's tokenizer, so chunking can be tested with this encoder."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from densa.encode import DEFAULT_MODEL, resolve_model_path

            self._tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(DEFAULT_MODEL)))
        return self._tokenizer

    def encode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._vectors(texts)

    def encode_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.encoded_documents += len(texts)
        return self._vectors(texts)

    def count_truncated(self, texts: Sequence[str]) -> int:
        return sum(1 for t in texts if len(_WORD.findall(t)) > self._spec.max_length - 2)


def build_tiny_bert(
    path: Path,
    minilm: Path,
    *,
    seed: int = 0,
    hidden: int = 32,
    classifier: bool = False,
    roberta: bool = False,
) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's vocabulary, saved as a plain folder;
    with ``classifier``, a one-logit sequence classifier (a tiny cross-encoder); with
    ``roberta``, a RoBERTa model instead (positions numbered from its padding id + 1)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, RobertaConfig, RobertaModel

    vocab_size = len((minilm / "vocab.txt").read_text(encoding="utf-8").splitlines())
    shape = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 2 * hidden,
        "num_labels": 1,
    }
    torch.manual_seed(seed)
    if roberta:  # MiniLM's [PAD] is id 0; positions 1.. 129
        roberta_config = RobertaConfig(**shape, max_position_embeddings=130, pad_token_id=0)
        RobertaModel(roberta_config).save_pretrained(path)
    else:
        config = BertConfig(**shape, max_position_embeddings=128)
        (BertForSequenceClassification if classifier else BertModel)(config).save_pretrained(path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm / name).is_file():
            shutil.copy(minilm / name, path / name)
    return path


def search(
    index: Any,
    queries: Sequence[str] | str,
    k: int = 10,
    *,
    mode: str = "dense",
    filter: Mapping[str, Any] | None = None,
    config: Any = None,
    reranker: Any = None,
) -> list[list[Any]]:
    """``Searcher(index, config or SearchConfig(mode=mode)).hits(queries, k)``: the tests' shorthand."""
    from densa.search import SearchConfig, Searcher

    texts = [queries] if isinstance(queries, str) else list(queries)
    return Searcher(index, config or SearchConfig(mode=mode), reranker=reranker).hits(texts, k, filter=filter)
