"""What a search does: which channels, how their rankings fuse, passages, reranking.

One :class:`SearchConfig` drives the Python API, the CLI (``densa search|eval`` options)
and the HTTP API (its request schema is derived from this dataclass), so an option works
the same through all three.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from densa.errors import ConfigError
from densa.fuse.fusion import FusionConfig
from densa.index import ChannelRecord

__all__ = ["HYBRID", "Aggregate", "Mode", "SearchConfig", "resolve_channels"]

#: The channel selection of a search: a channel name, names joined by ``+``, a kind (every
#: channel of that kind), or ``hybrid`` (every channel, fused). ``dense`` and ``bm25`` are the
#: names of the default channels.
Mode = str
HYBRID = "hybrid"
Aggregate = Literal["max", "sum"]
_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SearchConfig:
    """How to search.

    Parameters
    ----------
    mode
        Which channels: ``dense``, ``bm25``, ``hybrid`` (all channels, fused), any channel
        name, or several joined by ``+`` (``dense+colbert``), fused.
    fusion
        How several channels' rankings fuse (weights by channel name).
    depth
        Candidates taken from each channel before fusion.
    aggregate
        Document score from its passages: ``max`` (best passage, MaxP) or ``sum`` (of the
        ``top_passages`` best); matters only for chunked indexes.
    top_passages
        Passages summed by ``aggregate="sum"``.
    rerank_depth
        Candidates the reranker rescores (when one is given).
    rerank_weight
        1 ranks the reranked candidates by the cross-encoder alone; below 1, by
        ``w * z(cross-encoder) + (1 - w) * z(first stage)`` (z-scores over the candidates),
        which keeps what the first stage knows when the reranker is weak or out of domain.
    """

    mode: Mode = "dense"
    fusion: FusionConfig = field(default_factory=FusionConfig)
    depth: int = 100
    aggregate: Aggregate = "max"
    top_passages: int = 3
    rerank_depth: int = 100
    rerank_weight: float = 1.0

    def __post_init__(self) -> None:
        tokens = self.mode.split("+")
        if not all(_TOKEN.match(t) for t in tokens):
            raise ConfigError(f"mode {self.mode!r}: give channel names joined by '+', or 'hybrid'")
        if self.aggregate not in ("max", "sum"):
            raise ConfigError(f"aggregate must be 'max' or 'sum', got {self.aggregate!r}")
        if min(self.depth, self.top_passages, self.rerank_depth) < 1:
            raise ConfigError("depth, top_passages and rerank_depth must be positive")
        if not 0 <= self.rerank_weight <= 1:
            raise ConfigError(f"rerank_weight must be in [0, 1], got {self.rerank_weight}")


def resolve_channels(mode: Mode, channels: Mapping[str, ChannelRecord]) -> list[str]:
    """The channel names ``mode`` selects in an index with ``channels`` (manifest order).

    Examples
    --------
    >>> chans = {"dense": ChannelRecord("dense", {}), "bm25": ChannelRecord("bm25", {}),
    ...          "e5": ChannelRecord("dense", {})}
    >>> resolve_channels("hybrid", chans), resolve_channels("bm25+e5", chans)
    (['dense', 'bm25', 'e5'], ['bm25', 'e5'])
    """
    if mode == HYBRID and HYBRID not in channels:
        return list(channels)
    chosen: list[str] = []
    for token in mode.split("+"):
        if token in channels:
            found = [token]
        else:
            found = [name for name, record in channels.items() if record.kind == token]
        if not found:
            raise ConfigError(
                f"mode {mode!r}: no channel {token!r} in this index (channels: {', '.join(channels)}; "
                "or 'hybrid' for all)"
            )
        chosen += [name for name in found if name not in chosen]
    return chosen
