"""Request and response bodies of the HTTP API (validated by pydantic)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AddRequest",
    "ContextRequest",
    "ContextResponse",
    "DocumentIn",
    "DocumentOut",
    "HitOut",
    "QueryResult",
    "SearchRequest",
    "SearchResponse",
]

Scalar = str | int | float | bool | None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(None, min_length=1, description="One query (or use `queries`).")
    queries: list[str] | None = Field(None, min_length=1, description="Several queries.")
    k: int = Field(10, ge=1, le=1000)
    mode: Literal["dense", "bm25", "hybrid"] = "dense"
    rerank: bool = False
    filter: dict[str, Scalar] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' and 'queries'")
        return self

    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])


class HitOut(BaseModel):
    rank: int
    id: str
    score: float
    title: str
    snippet: str
    metadata: dict[str, Any]


class QueryResult(BaseModel):
    query: str
    hits: list[HitOut]


class SearchResponse(BaseModel):
    mode: str
    results: list[QueryResult]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1)
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentOut(DocumentIn):
    pass


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class ContextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=100)
    max_tokens: int = Field(512, ge=16, le=32_768)
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"


class ContextResponse(BaseModel):
    query: str
    context: str
    citations: list[dict[str, Any]]
    tokens: int
    prompt: str
