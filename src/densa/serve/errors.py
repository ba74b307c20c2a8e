"""Errors as a contract: one table from densa's errors to HTTP statuses, one body for every error.

=======================  ======  ===================================================
error                    status  when
=======================  ======  ===================================================
validation               422     the request does not match the schema
``ConfigError``          422     an option value the search config refuses
``InputError``           422     bad input data
``NotFoundError``        404     an id that is not there
``ConflictError``        409     an id or name that is there already
``IndexMismatchError``   409     a model other than the index's
too large                413     a body over the limit (bytes actually read)
``IndexDamagedError``    500     an index file missing or damaged (details in the log)
``EngineError``          503     the external vector engine failed (details in the log)
anything else            500     a bug (details in the log)
=======================  ======  ===================================================

Every error answers ``{"detail": "...", "error": "<kind>"}`` (validation errors add
``errors``, pydantic's list); messages never carry the server's file paths.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from densa.errors import (
    ConfigError,
    ConflictError,
    DensaError,
    EngineError,
    IndexDamagedError,
    IndexMismatchError,
    InputError,
    NotFoundError,
)

__all__ = ["ERROR_RESPONSES", "STATUS", "BodyLimit", "ErrorBody", "error_body", "status_of"]

_LOG = logging.getLogger("densa.serve")

#: densa's error classes and their HTTP status, most specific first.
STATUS: tuple[tuple[type[DensaError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (IndexMismatchError, 409, "model_mismatch"),
    (ConfigError, 422, "invalid_option"),
    (InputError, 422, "invalid_input"),
    (IndexDamagedError, 500, "index_damaged"),
    (EngineError, 503, "engine_unavailable"),
    (DensaError, 400, "bad_request"),
)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:'\"]+/)+[^\s:'\",)]*")


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str
    error: str
    errors: list[dict[str, Any]] | None = None


#: For each route's ``responses=``: every error status with :class:`ErrorBody` (this replaces
#: FastAPI's default 422 schema, so the documented body is the one sent).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Bad request"),
        (401, "Missing or wrong API key"),
        (403, "Writes refused"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "Body too large"),
        (422, "Invalid request"),
        (500, "Server error (index damaged, or a bug); details in the server log"),
        (503, "The vector engine failed; details in the server log"),
    )
}


def status_of(exc: DensaError) -> tuple[int, str]:
    for kind, status, name in STATUS:
        if isinstance(exc, kind):
            return status, name
    return 400, "bad_request"


def scrub(message: str, index: Path) -> str:
    """``message`` without the server's paths: the index folder becomes ``INDEX``, any other
    absolute path ``<path>``."""
    for form in {str(index.resolve()), str(index.absolute()), str(index)}:
        if form not in (".", ""):
            message = message.replace(form, "INDEX")
    return _ABSOLUTE_PATH.sub("<path>", message)


def error_body(exc: DensaError, index: Path) -> tuple[int, dict[str, Any]]:
    """The status and body answering ``exc``; a damaged index is logged, not described."""
    status, name = status_of(exc)
    if status == 503:
        _LOG.error("engine error: %s", exc)
        detail = "the vector engine failed; the server log says how"
    elif status >= 500:
        _LOG.error("index error: %s", exc)
        detail = "the index is damaged or incomplete; the server log says which file"
    else:
        detail = scrub(str(exc), index)
    return status, ErrorBody(detail=detail, error=name).model_dump(exclude_none=True)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 after reading at
    most ``limit + 1`` bytes of it, whatever ``Content-Length`` says (chunked bodies too); a body
    that is not UTF-8 is answered 422. Bodies within the limit are buffered and replayed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _answer(send, 413, f"request body over {self.limit} bytes", "too_large")
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await _answer(send, 413, f"request body over {self.limit} bytes", "too_large")
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        data = b"".join(chunks)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            await _answer(send, 422, f"request body is not UTF-8 (byte {exc.start})", "invalid_input")
            return
        replay: list[Message] = [{"type": "http.request", "body": data, "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


async def _answer(send: Send, status: int, detail: str, error: str) -> None:
    body = json.dumps({"detail": detail, "error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
