"""Server configuration."""

from __future__ import annotations

import ipaddress
from collections.abc import Container
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from densa.encode.config import Backend
from densa.errors import ConfigError
from densa.search.config import SearchConfig
from densa.search.pipeline import Pipeline

__all__ = ["ServeConfig", "is_loopback", "with_pipeline"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """What ``densa serve`` serves and how.

    Parameters
    ----------
    index
        The index folder.
    host, port
        Where to listen (loopback by default).
    api_key
        Required on write endpoints when set; writes off loopback need one.
    read_only
        Refuse every write.
    reranker
        Cross-encoder folder for requests with ``"rerank": true``.
    rerank_weight
        Cross-encoder share of the reranked score (see :class:`densa.search.SearchConfig`).
    search
        The search options a request leaves out (``densa serve --pipeline FILE``: the file's
        channels, fusion and depths); ``None``: :class:`~densa.search.SearchConfig`'s defaults.
        ``rerank_weight`` above wins over its ``rerank_weight``.
    rerank_by_default
        Whether a request that does not say ``rerank`` is reranked (a pipeline with a reranker).
    max_query_chars, max_queries, max_body_bytes
        Request limits (answered with JSON 4xx errors).
    device
        Encoder device.
    backend
        Query encoding backend: ``auto`` (the default: the fastest that keeps quality), one of
        the backends, or ``None`` for the one the index was built with.
    batch_wait_ms, max_batch
        Micro-batching: how long a search waits for others to share its batch, and how many
        queries one batch holds at most.
    model_threads
        Worker threads of the lane of searches that need a model: with 2, one thread encodes a
        batch while the other searches and fetches the one before.
    """

    index: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    read_only: bool = False
    reranker: Path | None = None
    rerank_weight: float = 1.0
    search: SearchConfig | None = None
    rerank_by_default: bool = False
    max_query_chars: int = 2000
    max_queries: int = 64
    max_body_bytes: int = 8 * 1024 * 1024
    device: str | None = None
    backend: Backend | Literal["auto"] | None = "auto"
    batch_wait_ms: float = 3.0
    max_batch: int = 64
    model_threads: int = 2
    search_threads: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError("port must be in 1..65535")
        SearchConfig(rerank_weight=self.rerank_weight)  # its bound is checked where it is defined
        if self.max_query_chars < 1 or self.max_queries < 1 or self.max_body_bytes < 1024:
            raise ConfigError("request limits must be positive (body at least 1 KiB)")
        threads = min(self.model_threads, self.search_threads)
        if not 0 <= self.batch_wait_ms <= 1000 or self.max_batch < 1 or threads < 1:
            raise ConfigError(
                "batch_wait_ms must be in [0, 1000], max_batch, model_threads and search_threads positive"
            )
        if self.rerank_by_default and self.reranker is None:
            raise ConfigError("rerank_by_default needs a reranker")

    @property
    def request_defaults(self) -> SearchConfig:
        """The search options of a request that leaves them out."""
        return replace(self.search or SearchConfig(), rerank_weight=self.rerank_weight)

    @property
    def writes_need_key(self) -> bool:
        return self.api_key is not None or not is_loopback(self.host)


def with_pipeline(config: ServeConfig, pipeline: Pipeline, given: Container[str] = ()) -> ServeConfig:
    """``config`` serving a pipeline file: its search options become the requests' defaults,
    its reranker reranks every request that does not say ``"rerank": false``, and its rerank
    weight and backend hold, except for the fields named in ``given`` (set by hand)."""
    changes: dict[str, object] = {"search": pipeline.search}
    if "reranker" not in given and pipeline.reranker is not None:
        changes["reranker"] = pipeline.reranker
    if "rerank_weight" not in given:
        changes["rerank_weight"] = pipeline.search.rerank_weight
    if "backend" not in given and pipeline.backend is not None:
        changes["backend"] = pipeline.backend
    reranker = changes.get("reranker", config.reranker)
    changes["rerank_by_default"] = pipeline.reranker is not None and reranker is not None
    return replace(config, **changes)  # type: ignore[arg-type]
