"""The channel registry: kind name -> the factory that builds and opens channels of that kind.

densa's own kinds (``dense``, ``bm25``, ``colbert``, ``splade``) are registered on first lookup,
by module path, so importing densa loads neither FAISS nor bm25s. Another kind is one call::

    from densa.index.channels import registry
    registry.register("toy", ToyFactory())

after which ``Index.build(..., channels={"toy": ToyConfig()})`` and ``Index.add_channel``
use it, and an index whose manifest names it opens once the registering module is imported.
"""

from __future__ import annotations

import importlib

from densa.errors import ConfigError, DensaError
from densa.index.channels.base import ChannelFactory

__all__ = ["get", "kinds", "register"]

_BUILT_IN = {
    "dense": "densa.index.channels.dense",
    "bm25": "densa.index.channels.bm25",
    "colbert": "densa.index.channels.colbert",
    "splade": "densa.index.channels.splade",
}
_FACTORIES: dict[str, ChannelFactory] = {}


def register(kind: str, factory: ChannelFactory, *, replace: bool = False) -> None:
    """Make ``kind`` available to every index (``replace`` allows registering it again)."""
    if not kind or not kind.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"channel kind names are letters, digits, '-' and '_': {kind!r}")
    if kind in _FACTORIES and not replace and _FACTORIES[kind] is not factory:
        raise ConfigError(f"channel kind {kind!r} is already registered")
    _FACTORIES[kind] = factory


def get(kind: str) -> ChannelFactory:
    """The factory of ``kind``; densa's own kinds load on first use."""
    if kind not in _FACTORIES and kind in _BUILT_IN:
        module = importlib.import_module(_BUILT_IN[kind])
        register(kind, module.FACTORY)
    if kind not in _FACTORIES:
        raise DensaError(
            f"no channel kind {kind!r} is registered (known: {', '.join(kinds())}); import the module "
            "that registers it before opening the index"
        )
    return _FACTORIES[kind]


def kinds() -> list[str]:
    """Every kind that can be used now (densa's own and the registered ones)."""
    return sorted({*_BUILT_IN, *_FACTORIES})
