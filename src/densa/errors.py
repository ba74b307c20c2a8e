"""Exceptions densa raises for problems a user can fix.

The CLI prints these as one line (``error: ...``) and exits with status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "DensaError",
    "EngineError",
    "IndexDamagedError",
    "IndexMismatchError",
    "InputError",
    "MissingExtraError",
    "NotFoundError",
]


class DensaError(Exception):
    """Base class of every error that is the user's to fix."""


class InputError(DensaError):
    """Bad input data, located by file and (1-based) line.

    Examples
    --------
    >>> str(InputError("corpus.jsonl", 3, "missing 'text'"))
    "corpus.jsonl:3: missing 'text'"
    """

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


class ConfigError(DensaError, ValueError):
    """An invalid option value (raised by the configuration dataclasses)."""


class IndexMismatchError(DensaError):
    """An index opened with an encoder other than the one that built it."""


class IndexDamagedError(DensaError):
    """A file of an index folder is missing, unreadable or disagrees with the manifest."""


class EngineError(DensaError):
    """An external vector engine (Qdrant, Milvus) refused or failed an operation; the message
    names the engine and what failed. A failed write leaves the index at its last commit."""


class NotFoundError(DensaError):
    """Something asked for by id (a document, a channel) is not there."""


class ConflictError(DensaError):
    """What is being added is there already (a document id, a channel name)."""


class MissingExtraError(DensaError):
    """An optional dependency is not installed."""
