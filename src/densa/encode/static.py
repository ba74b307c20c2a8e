"""Static embeddings: a text's vector is the mean of its tokens' stored vectors (no network).

A static model is a token-embedding table and a tokenizer, in model2vec's folder format
(``config.json`` with ``"model_type": "model2vec"``, ``model.safetensors`` holding
``embeddings``, ``tokenizer.json``), so a folder loads in model2vec's ``StaticModel`` too.
:func:`distill` makes one from any transformer bi-encoder as model2vec does (Tulkens & van
Dongen 2024): every vocabulary token is encoded alone, the vectors are reduced by PCA and
weighted by SIF over a Zipf estimate of token frequency. densa does this itself because
model2vec's ``distill`` extra pins ``transformers<5.4``, older than densa's.

Encoding costs one table lookup per token: on 2 CPU cores about two orders of magnitude
faster than MiniLM (``bench/results/static.md``), at lower quality.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from densa.encode.config import EncoderConfig, EncoderSpec
from densa.encode.encoder import Vectors, l2_normalize
from densa.encode.model_files import fingerprint, resolve_model_path
from densa.errors import ConfigError, DensaError

__all__ = ["StaticEncoder", "distill", "is_static_model"]

_UNUSED = re.compile(r"^\[unused\d+\]$")
_MAX_TOKENS = 512


def is_static_model(path: Path) -> bool:
    """Whether ``path`` is a static model folder (model2vec's format)."""
    config = path / "config.json"
    if not config.is_file() or not (path / "model.safetensors").is_file():
        return False
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("model_type") == "model2vec")
    except (OSError, json.JSONDecodeError):
        return False


class StaticEncoder:
    """Encodes with a static model folder; queries and passages alike.

    Parameters
    ----------
    config
        ``model`` names the folder; ``query_prefix`` / ``passage_prefix``, ``max_length``
        (default 512 tokens) and ``dim`` (keep the first ``dim`` dimensions) apply as for a
        transformer; pooling is always the mean, similarity cosine.
    """

    def __init__(self, config: EncoderConfig) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if config.query_model is not None:
            raise ConfigError("a static model has one tower: query_model is not supported")
        if config.pooling not in (None, "mean") or config.similarity not in (None, "cosine"):
            raise ConfigError("a static model pools by the mean and compares by cosine")
        path = resolve_model_path(config.model)
        if not is_static_model(path):
            raise DensaError(f"{path}: not a static model folder (config.json with model_type model2vec)")
        try:
            table = load_file(str(path / "model.safetensors"))["embeddings"]
        except (OSError, KeyError, ValueError) as exc:
            raise DensaError(
                f"{path / 'model.safetensors'}: cannot read its 'embeddings' table ({exc})"
            ) from exc
        self._table = np.ascontiguousarray(table, dtype=np.float32)
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        settings = json.loads((path / "config.json").read_text(encoding="utf-8"))
        full_dim = self._table.shape[1]
        if config.dim is not None and config.dim > full_dim:
            raise DensaError(f"dim={config.dim} is larger than the model's dimension {full_dim}")
        self._spec = EncoderSpec(
            model=config.model,
            fingerprint=fingerprint(path),
            query_model=None,
            query_fingerprint=None,
            pooling="mean",
            similarity="cosine",
            normalize=True,
            query_prefix=config.query_prefix,
            passage_prefix=config.passage_prefix,
            max_length=config.max_length or int(settings.get("max_length") or _MAX_TOKENS),
            dim=config.dim or full_dim,
            backend="static",
        )

    @property
    def spec(self) -> EncoderSpec:
        return self._spec

    @property
    def tokenizer(self) -> Any:
        """The ``tokenizers`` tokenizer (chunking measures passages with it)."""
        return self._tokenizer

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, self._spec.query_prefix)

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        return self._encode(texts, self._spec.passage_prefix)

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many texts have more tokens than ``max_length`` (their tail is not encoded)."""
        return sum(len(e.ids) > self._spec.max_length for e in self._tokenize(texts, ""))

    def _tokenize(self, texts: Sequence[str], prefix: str) -> list[Any]:
        return self._tokenizer.encode_batch_fast([prefix + t for t in texts], add_special_tokens=False)

    def _encode(self, texts: Sequence[str], prefix: str) -> Vectors:
        dim = self._spec.dim
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        from scipy.sparse import csr_matrix

        ids = [e.ids[: self._spec.max_length] for e in self._tokenize(texts, prefix)]
        lengths = np.fromiter((len(i) for i in ids), np.int64, len(ids))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.concatenate([np.asarray(i, np.int64) for i in ids]) if indptr[-1] else np.zeros(0, np.int64)
        # token counts per text (a sparse texts x vocabulary matrix) times the table: the sum of
        # each text's token vectors without materialising one row per token
        counts = csr_matrix(
            (np.ones(len(flat), np.float32), flat, indptr), shape=(len(ids), len(self._table))
        )
        sums = np.asarray(counts @ self._table, np.float32)
        means = (sums / np.maximum(lengths, 1)[:, None]).astype(np.float32)
        return np.ascontiguousarray(l2_normalize(means[:, :dim]))


def distill(
    output: str | Path,
    model: str = "bundled:all-MiniLM-L6-v2",
    *,
    pca_dims: int | None = 256,
    sif_coefficient: float | None = 1e-4,
    batch_size: int = 512,
    progress: bool = False,
) -> Path:
    """Distil a static model from transformer ``model`` into the folder ``output``.

    Every vocabulary token (but BERT's ``[unused*]`` slots) is encoded alone, as
    ``[CLS] token [SEP]``, and mean-pooled; the table is centred and reduced to ``pca_dims``
    by PCA; each row is weighted by SIF, ``a / (a + p(token))``, with ``p`` from Zipf's law
    over the vocabulary order (model2vec's recipe and defaults).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise DensaError(f"{output} already exists and is not empty")
    source = resolve_model_path(model)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    network = AutoModel.from_pretrained(str(source)).eval()
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    keep = np.array([not _UNUSED.match(token) for token, _ in vocab])
    ids = np.array([i for _, i in vocab], np.int64)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None or sep is None:
        raise DensaError(f"{source}: its tokenizer has no [CLS]/[SEP] tokens to frame each token with")
    rows: list[npt.NDArray[np.float32]] = []
    bar = _bar(progress, len(ids))
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            batch = torch.as_tensor(ids[start : start + batch_size])
            inputs = torch.stack([torch.full_like(batch, cls), batch, torch.full_like(batch, sep)], dim=1)
            hidden = network(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state
            rows.append(hidden.mean(dim=1).float().numpy())
            if bar is not None:
                bar.update(len(batch))
    if bar is not None:
        bar.close()
    table = np.concatenate(rows).astype(np.float64)
    if pca_dims is not None and pca_dims < table.shape[1]:
        centred = table[keep] - table[keep].mean(axis=0)
        _, vectors = np.linalg.eigh(centred.T @ centred)
        components = vectors[:, ::-1][:, :pca_dims]
        table = (table - table[keep].mean(axis=0)) @ components
    if sif_coefficient is not None:
        inverse_rank = 1.0 / np.arange(2, len(table) + 2)
        probability = inverse_rank / inverse_rank.sum()
        table *= (sif_coefficient / (sif_coefficient + probability))[:, None]
    table[~keep] = 0.0
    _save(output, source, table.astype(np.float32), pca_dims, sif_coefficient)
    return output


def _save(
    output: Path, source: Path, table: npt.NDArray[np.float32], pca_dims: int | None, sif: float | None
) -> None:
    from safetensors.numpy import save_file

    output.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": table}, str(output / "model.safetensors"))
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["post_processor"] = None  # no [CLS]/[SEP]: a static model averages real tokens only
    tokenizer["padding"] = None
    tokenizer["truncation"] = None
    (output / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": source.name,
        "apply_pca": pca_dims,
        "sif_coefficient": sif,
        "hidden_dim": int(table.shape[1]),
        "seq_length": 1000000,
        "normalize": True,
        "pooling": "mean",
        "max_length": _MAX_TOKENS,
        "distilled_by": "densa",
    }
    (output / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (output / "README.md").write_text(
        f"# Static embeddings distilled from {source.name}\n\nMade by `densa distill` (model2vec's "
        "recipe: per-token vectors, PCA, SIF weights). Load with densa (`--model THIS_FOLDER`) or "
        "`model2vec.StaticModel.from_pretrained`.\n",
        encoding="utf-8",
    )


def _bar(show: bool, total: int) -> Any:
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="distilling tokens", unit="tok")
