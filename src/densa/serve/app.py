"""The HTTP API and search page (``pip install 'densa[serve]'``), built by :func:`create_app`.

==========================  ======================================================
``POST /search``            one query or many; ``k``, ``filter``, ``rerank``, and every
                            :class:`~densa.search.SearchConfig` option (``mode``: any
                            channels, e.g. dense|bm25|hybrid; ``fusion``; ``depth``...)
``GET /channels``           the index's channels (name, kind, unit)
``POST /context``           RAG context block with citations inside a token budget
``GET /documents/{id}``     a stored document
``POST /documents``         add documents (dense, BM25 and store, atomically)
``DELETE /documents/{id}``  delete a document
``GET /healthz``            liveness and document count
``GET /stats``              index and traffic counters
``GET /``                   the page: every channel and their fusion side by side
``GET /docs``               OpenAPI documentation (``/openapi.json``)
==========================  ======================================================
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations,
# and ``Request`` is imported inside create_app (FastAPI is an optional dependency).
import asyncio
import gc
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from densa._optional import require
from densa._version import __version__
from densa.encode.encoder import Encoder
from densa.errors import ConflictError, DensaError, InputError, NotFoundError
from densa.rag import assemble_context
from densa.search import SearchConfig
from densa.serve.config import ServeConfig
from densa.serve.errors import ERROR_RESPONSES, BodyLimit, ErrorBody, error_body
from densa.serve.schemas import (
    AddRequest,
    ChannelOut,
    ContextRequest,
    ContextResponse,
    DocumentOut,
    HitOut,
    QueryResult,
    SearchRequest,
    SearchResponse,
    WriteResult,
    search_config,
)
from densa.serve.service import IndexService
from densa.types import Document, Hit

__all__ = ["create_app"]

_SNIPPET = 320
_LOG = logging.getLogger("densa.serve")


def _snippet(hit: Hit) -> str:
    """The first ``_SNIPPET`` characters of the passage, whitespace runs made one space."""
    raw = hit.passage or hit.text
    # normalising a prefix gives a prefix of the normalised whole: a prefix a little longer
    # than the snippet, longer while whitespace runs leave it too short
    head = _SNIPPET + _SNIPPET // 4
    text = " ".join(raw[:head].split())
    while len(text) <= _SNIPPET and len(raw) > head:
        head *= 4
        text = " ".join(raw[:head].split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def _hit_out(hit: Hit) -> HitOut:
    return HitOut(
        rank=hit.rank,
        id=hit.doc_id,
        score=hit.score,
        title=hit.title,
        snippet=_snippet(hit),
        metadata=dict(hit.metadata),
    )


def create_app(config: ServeConfig, *, encoder: Encoder | None = None) -> Any:
    """Build the FastAPI application serving ``config.index``.

    Parameters
    ----------
    config
        Index, limits and write policy.
    encoder
        Use this encoder instead of loading the one recorded in the index (tests).
    """
    require("fastapi", "serve")
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    service = IndexService(config, encoder)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        service.open()  # again, if an earlier lifespan of this app closed it
        # what start-up made (modules, the index's objects: ~100k) lives as long as the server:
        # out of the collector's sight, a full collection (every thread stopped, every ~1000
        # searches) walks only what requests left, not all of them again
        gc.freeze()
        yield
        gc.unfreeze()
        service.close()  # batch workers stop, the snapshots' leases are released

    app = FastAPI(
        lifespan=lifespan,
        title="densa",
        version=__version__,
        description="Dense passage retrieval over one index.",
        docs_url=None,  # served below from local assets: no CDN
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    static = Path(str(files("densa.serve") / "static"))

    @app.exception_handler(DensaError)
    async def densa_error(request: Request, exc: DensaError) -> JSONResponse:
        status, body = error_body(exc, config.index)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        detail = f"{where}: {first['msg']}"
        body = ErrorBody(detail=detail, error="validation", errors=jsonable(errors))
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            413: "too_large",
        }
        body = ErrorBody(detail=str(exc.detail), error=kind.get(exc.status_code, "http_error"))
        return JSONResponse(
            body.model_dump(exclude_none=True), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        _LOG.exception("unexpected error answering %s %s", request.method, request.url.path)
        body = ErrorBody(detail="internal error; the server log has the details", error="internal")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=500)

    def check_write(request: Request) -> None:
        if config.read_only:
            raise HTTPException(403, "this server is read-only")
        if config.api_key is not None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            given = request.headers.get("x-api-key") or (token if scheme.lower() == "bearer" else "")
            if not secrets.compare_digest(given.encode(), config.api_key.encode()):
                raise HTTPException(
                    401, "missing or wrong API key (X-API-Key: KEY, or Authorization: Bearer KEY)"
                )
        elif config.writes_need_key:
            raise HTTPException(403, "writes off loopback need --api-key (or DENSA_API_KEY)")

    def check_queries(texts: list[str]) -> None:
        if len(texts) > config.max_queries:
            raise InputError("queries", None, f"at most {config.max_queries} per request")
        if any(len(t) > config.max_query_chars for t in texts):
            raise InputError("query", None, f"longer than {config.max_query_chars} characters")

    # options a request leaves out: the server's (--rerank-weight, a --pipeline file's), made once
    defaults = config.request_defaults

    @app.post("/search", response_model=SearchResponse, responses=ERROR_RESPONSES)
    async def search(body: SearchRequest) -> Response:
        # on the event loop: no worker-thread hop per request; the batch workers do the work
        texts = body.texts()
        check_queries(texts)
        rerank = body.rerank if "rerank" in body.model_fields_set else config.rerank_by_default
        if rerank and service.reranker is None:
            raise DensaError("no reranker configured: start the server with --rerank DIR")
        search = search_config(body, defaults)
        if service.stale:  # another process wrote: open its generation off the loop
            await run_in_threadpool(service.refresh)
        channels, pending = service.submit(texts, body.k, search, body.filter, rerank)
        hits = await asyncio.wrap_future(pending)
        results = [
            QueryResult(query=t, hits=[_hit_out(h) for h in hs]) for t, hs in zip(texts, hits, strict=True)
        ]
        answer = SearchResponse(mode=search.mode, channels=channels, results=results)
        # serialised once by pydantic (the hot path): FastAPI would validate the model again first
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.get("/channels", response_model=list[ChannelOut], responses=ERROR_RESPONSES)
    def channels() -> list[ChannelOut]:
        with service.snapshot() as index:
            return [
                ChannelOut(name=n, kind=r.kind, unit=index.kind(n).unit) for n, r in index.channels.items()
            ]

    @app.post("/context", response_model=ContextResponse, responses=ERROR_RESPONSES)
    def context(body: ContextRequest) -> ContextResponse:
        check_queries([body.query])
        if service.encoder is None:
            raise DensaError("this index has no dense channel, whose tokenizer counts the context tokens")
        _, found = service.search([body.query], body.k, SearchConfig(mode=body.mode), None, False)
        hits = found[0]
        tokenizer = service.encoder.tokenizer

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        ctx = assemble_context(body.query, hits, body.max_tokens, count)
        return ContextResponse(
            query=ctx.question,
            context=ctx.context,
            citations=[vars(c) for c in ctx.citations],
            tokens=ctx.tokens,
            prompt=ctx.prompt,
        )

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut, responses=ERROR_RESPONSES)
    def get_document(doc_id: str) -> DocumentOut:
        with service.snapshot() as index:
            doc = index.get(doc_id)
        if doc is None:
            raise NotFoundError(f"no document {doc_id!r}")
        return DocumentOut(id=doc.id, text=doc.text, title=doc.title, metadata=dict(doc.metadata))

    @app.post(
        "/documents", response_model=WriteResult, response_model_exclude_none=True, responses=ERROR_RESPONSES
    )
    def add_documents(body: AddRequest, request: Request) -> dict[str, Any]:
        check_write(request)
        ids = [d.id for d in body.documents]
        if len(set(ids)) != len(ids):
            raise InputError("documents", None, "the same id twice in the request")
        with service.snapshot() as index:
            existing = set(index.snapshot.locate(ids))
        if existing:
            raise ConflictError(f"document id(s) already in the index: {sorted(existing)[:5]}")
        docs = [Document(d.id, d.text, d.title, d.metadata) for d in body.documents]
        total = service.add(docs)
        return {"added": len(docs), "documents": total}

    @app.delete(
        "/documents/{doc_id:path}",
        response_model=WriteResult,
        response_model_exclude_none=True,
        responses=ERROR_RESPONSES,
    )
    def delete_document(doc_id: str, request: Request) -> dict[str, Any]:
        check_write(request)
        with service.snapshot() as index:
            missing = index.get(doc_id) is None
        if missing:
            raise NotFoundError(f"no document {doc_id!r}")
        return {"deleted": doc_id, "documents": service.delete([doc_id])}

    @app.get("/healthz", responses=ERROR_RESPONSES)
    def healthz() -> dict[str, Any]:
        with service.snapshot() as index:
            return {"status": "ok", "documents": index.manifest.documents}

    @app.get("/stats", responses=ERROR_RESPONSES)
    def stats() -> dict[str, Any]:
        return service.stats()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (static / "index.html").read_text(encoding="utf-8")

    app.mount("/static", StaticFiles(directory=static), name="static")
    swagger = _swagger_assets()
    if swagger is not None:
        from fastapi.openapi.docs import get_swagger_ui_html

        app.mount("/docs-assets", StaticFiles(directory=swagger), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url="/openapi.json",
                title="densa API",
                swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                swagger_css_url="/docs-assets/swagger-ui.css",
                swagger_favicon_url="/docs-assets/favicon-32x32.png",
            )

    return app


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the ``swagger-ui-bundle-v2`` package (``densa[serve]``), if installed."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's error list with every value JSON-safe (tuples as lists, the rest as text)."""
    return [json.loads(json.dumps(e, default=str)) for e in errors]
