"""Lazy import of optional dependencies with a clear install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from densa.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra.

    Examples
    --------
    >>> require("json", "core").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module!r} is not installed; install it with: pip install 'densa[{extra}]'"
        ) from exc
