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
import secrets
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from densa._optional import require
from densa._version import __version__
from densa.encode.encoder import Encoder
from densa.errors import ConfigError, DensaError
from densa.rag import assemble_context
from densa.search import SearchConfig
from densa.serve.config import ServeConfig
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
    search_config,
)
from densa.serve.service import IndexService
from densa.types import Document, Hit

__all__ = ["create_app"]

_SNIPPET = 320


def _snippet(hit: Hit) -> str:
    text = " ".join((hit.passage or hit.text).split())
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
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    service = IndexService(config, encoder)
    app = FastAPI(title="densa", version=__version__, description="Dense passage retrieval over one index.")
    app.state.service = service
    static = Path(str(files("densa.serve") / "static"))

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            return JSONResponse(
                {"detail": f"request body over {config.max_body_bytes} bytes"}, status_code=413
            )
        return await call_next(request)

    @app.exception_handler(DensaError)
    async def densa_error(request: Request, exc: DensaError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422 if isinstance(exc, ConfigError) else 400)

    def check_write(request: Request) -> None:
        if config.read_only:
            raise HTTPException(403, "this server is read-only")
        if config.api_key is not None:
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix(
                "Bearer "
            )
            if not secrets.compare_digest(given.encode(), config.api_key.encode()):
                raise HTTPException(401, "missing or wrong API key (X-API-Key header)")
        elif config.writes_need_key:
            raise HTTPException(403, "writes off loopback need --api-key (or DENSA_API_KEY)")

    def check_queries(texts: list[str]) -> None:
        if len(texts) > config.max_queries:
            raise HTTPException(422, f"at most {config.max_queries} queries per request")
        if any(len(t) > config.max_query_chars for t in texts):
            raise HTTPException(422, f"a query is longer than {config.max_query_chars} characters")

    @app.post("/search", response_model=SearchResponse)
    def search(body: SearchRequest) -> SearchResponse:
        texts = body.texts()
        check_queries(texts)
        if body.rerank and service.reranker is None:
            raise HTTPException(400, "no reranker configured: start the server with --rerank DIR")
        config = search_config(body)
        if "rerank_weight" not in body.model_fields_set:  # the server's --rerank-weight
            config = replace(config, rerank_weight=service.config.rerank_weight)
        channels, hits = service.search(texts, body.k, config, body.filter, body.rerank)
        results = [
            QueryResult(query=t, hits=[_hit_out(h) for h in hs]) for t, hs in zip(texts, hits, strict=True)
        ]
        return SearchResponse(mode=config.mode, channels=channels, results=results)

    @app.get("/channels", response_model=list[ChannelOut])
    def channels() -> list[ChannelOut]:
        index = service.index
        return [ChannelOut(name=n, kind=r.kind, unit=index.kind(n).unit) for n, r in index.channels.items()]

    @app.post("/context", response_model=ContextResponse)
    def context(body: ContextRequest) -> ContextResponse:
        check_queries([body.query])
        if service.encoder is None:
            raise HTTPException(
                400, "this index has no dense channel, whose tokenizer counts the context tokens"
            )
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

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut)
    def get_document(doc_id: str) -> DocumentOut:
        doc = service.index.get(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id!r}")
        return DocumentOut(id=doc.id, text=doc.text, title=doc.title, metadata=dict(doc.metadata))

    @app.post("/documents")
    def add_documents(body: AddRequest, request: Request) -> dict[str, Any]:
        check_write(request)
        ids = [d.id for d in body.documents]
        if len(set(ids)) != len(ids):
            raise HTTPException(422, "duplicate ids in the request")
        existing = set(service.index.snapshot.locate(ids))
        if existing:
            raise HTTPException(409, f"already in the index: {sorted(existing)[:5]}")
        docs = [Document(d.id, d.text, d.title, d.metadata) for d in body.documents]
        total = service.add(docs)
        return {"added": len(docs), "documents": total}

    @app.delete("/documents/{doc_id:path}")
    def delete_document(doc_id: str, request: Request) -> dict[str, Any]:
        check_write(request)
        if service.index.get(doc_id) is None:
            raise HTTPException(404, f"no document {doc_id!r}")
        return {"deleted": doc_id, "documents": service.delete([doc_id])}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "documents": service.index.manifest.documents}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        return service.stats()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (static / "index.html").read_text(encoding="utf-8")

    app.mount("/static", StaticFiles(directory=static), name="static")
    return app
