"""A model folder's ``tokenizer.json`` through the ``tokenizers`` library alone.

transformers' tokenizer classes import torch whenever it is installed; an exported graph
(:mod:`densa.encode.onnx`) needs only the tokenizer, so queries can be encoded without
loading torch at all. Both run the same Rust tokenizer: ids, masks, lengths and offsets are
equal (a test checks it). :class:`FastTokenizer` answers the calls densa makes of a Hugging
Face tokenizer, and no others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FastTokenizer"]


class FastTokenizer:
    """``tokenizer(texts, ...)`` as transformers' fast tokenizers answer it, for the options
    densa uses: ``add_special_tokens``, ``padding`` (to the longest), ``truncation`` with
    ``max_length``, ``return_tensors="np"``, ``return_length``, ``return_offsets_mapping``."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        pad = config.get("pad_token") or "[PAD]"
        self._pad_token = pad["content"] if isinstance(pad, dict) else str(pad)
        self._pad_id = self._tokenizer.token_to_id(self._pad_token) or 0
        self.model_max_length = int(config.get("model_max_length") or 512)

    @classmethod
    def load(cls, folder: Path) -> FastTokenizer | None:
        """The folder's tokenizer, or ``None`` if it has no ``tokenizer.json``."""
        return cls(folder) if (folder / "tokenizer.json").is_file() else None

    def __call__(
        self,
        texts: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        padding: bool = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = None,
        return_length: bool = False,
        return_offsets_mapping: bool = False,
    ) -> dict[str, Any]:
        single = isinstance(texts, str)
        batch = [texts] if isinstance(texts, str) else list(texts)
        tokenizer = self._tokenizer
        if truncation and max_length is not None:
            tokenizer.enable_truncation(max_length)
        else:
            tokenizer.no_truncation()
        if padding:
            tokenizer.enable_padding(pad_id=self._pad_id, pad_token=self._pad_token)
        else:
            tokenizer.no_padding()
        encodings = tokenizer.encode_batch(batch, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {
            "input_ids": [e.ids for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
        }
        if return_length:
            out["length"] = [sum(e.attention_mask) for e in encodings]
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        if return_tensors == "np":
            for key in ("input_ids", "token_type_ids", "attention_mask"):
                out[key] = np.asarray(out[key], dtype=np.int64)
        elif single:
            out = {key: value[0] for key, value in out.items()}
        return out
