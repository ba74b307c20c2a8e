"""Channels named on the command line: ``[NAME=]KIND[:BACKEND]``.

``dense`` (a dense channel named ``dense`` on the default FAISS kind), ``dense:hnsw``,
``e5=dense:ivf-pq``, ``bm25``, ``colbert``. The model and FAISS options of ``densa index`` apply
to every dense channel named, the ColBERT options to every colbert channel; another registered
kind can be named if its factory has a ``config(backend)`` method returning a default config.

Examples
--------
>>> from densa.encode.config import EncoderConfig
>>> specs = ["dense:hnsw", "keywords=bm25"]
>>> configs = channel_configs(specs, EncoderConfig(), VectorIndexConfig(), BM25Config())
>>> {name: (c.kind, getattr(c, "vectors", None) and c.vectors.kind) for name, c in configs.items()}
{'dense': ('dense', 'hnsw'), 'keywords': ('bm25', None)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, get_args

from densa.encode.config import EncoderConfig
from densa.encode.encoder import Encoder
from densa.errors import ConfigError
from densa.index.channels import registry
from densa.index.channels.bm25 import BM25Config
from densa.index.channels.dense import DenseChannel
from densa.index.manifest import check_channel_name
from densa.index.vectors import IndexKind, VectorIndexConfig

__all__ = ["channel_configs", "parse_spec"]

_MODEL_KINDS = ("colbert", "splade")  # kinds whose model must be named


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """``[NAME=]KIND[:BACKEND]`` -> ``(name, kind, backend)``; the name defaults to the kind."""
    name, sep, rest = spec.partition("=")
    if not sep:
        name, rest = "", spec
    kind, _, backend = rest.partition(":")
    kind = kind.strip()
    if not kind:
        raise ConfigError(f"channel {spec!r}: expected [NAME=]KIND[:BACKEND], e.g. dense:hnsw or e5=dense")
    return check_channel_name(name.strip() or kind), kind, backend.strip() or None


def channel_configs(
    specs: Sequence[str],
    encoder: Encoder | EncoderConfig,
    vectors: VectorIndexConfig,
    bm25: BM25Config,
    models: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``{name: config}`` for the channels ``specs`` name (in order); ``models`` holds the
    config of other kinds whose model has no default (``colbert``, ``splade``), from their
    ``--KIND-model`` options."""
    out: dict[str, Any] = {}
    for spec in specs:
        name, kind, backend = parse_spec(spec)
        if name in out:
            raise ConfigError(f"channel {name!r} is named twice")
        if kind == "dense":
            if backend is not None and backend not in get_args(IndexKind):
                raise ConfigError(f"channel {spec!r}: dense backends are {', '.join(get_args(IndexKind))}")
            kind_vectors = vectors if backend is None else replace(vectors, kind=backend)  # type: ignore[arg-type]
            out[name] = DenseChannel(encoder, kind_vectors)
        elif kind == "bm25":
            if backend is not None:
                raise ConfigError(f"channel {spec!r}: bm25 has no backend to choose")
            out[name] = bm25
        elif kind in _MODEL_KINDS:
            config = (models or {}).get(kind)
            if backend is not None:
                raise ConfigError(f"channel {spec!r}: {kind} has no backend to choose")
            if config is None or not config.model:
                raise ConfigError(f"channel {spec!r}: a {kind} channel needs --{kind}-model DIR")
            out[name] = config
        else:
            factory = registry.get(kind)
            make = getattr(factory, "config", None)
            if make is None:
                raise ConfigError(
                    f"channel kind {kind!r} cannot be named on the command line (no config(backend))"
                )
            out[name] = make(backend)
    return out
