"""Request and response bodies of the HTTP API (validated by pydantic).

The search options of a request are not written out here: :data:`SearchOptions` and
:data:`FusionOptions` are generated from :class:`~densa.search.SearchConfig` and
:class:`~densa.fuse.FusionConfig` (same names, types and defaults), and
:func:`search_config` turns a request back into the dataclass, whose own checks apply. An
option added to the config is in the API without an edit here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from densa.fuse.fusion import FusionConfig
from densa.search.config import SearchConfig

__all__ = [
    "AddRequest",
    "ChannelOut",
    "ContextRequest",
    "ContextResponse",
    "DocumentIn",
    "DocumentOut",
    "FusionOptions",
    "HitOut",
    "QueryResult",
    "SearchOptions",
    "SearchRequest",
    "SearchResponse",
    "search_config",
]

Scalar = str | int | float | bool | None


def _options_model(config: type, name: str, nested: Mapping[type, type[BaseModel]]) -> type[BaseModel]:
    """A pydantic model with one field per dataclass field: same name, type and default."""
    hints = typing.get_type_hints(config)
    defaults = config()
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        kind = hints[f.name]
        if kind in nested:  # a nested config: its own model, left out = the config's default
            fields[f.name] = (nested[kind] | None, None)
        else:
            fields[f.name] = (kind, getattr(defaults, f.name))
    model: type[BaseModel] = create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    model.__doc__ = (config.__doc__ or "").split("\n\n")[0]
    return model


FusionOptions = _options_model(FusionConfig, "FusionOptions", {})
SearchOptions = _options_model(SearchConfig, "SearchOptions", {FusionConfig: FusionOptions})


def search_config(options: BaseModel) -> SearchConfig:
    """The :class:`SearchConfig` a request asks for (its checks raise ``ConfigError``)."""
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(SearchConfig)}
    fusion = values.pop("fusion")
    return SearchConfig(fusion=FusionConfig(**fusion.model_dump()) if fusion else FusionConfig(), **values)


class SearchRequest(SearchOptions):  # type: ignore[misc, valid-type]
    """One query or many, how many hits, a metadata filter, reranking, and search options."""

    query: str | None = Field(None, min_length=1, description="One query (or use `queries`).")
    queries: list[str] | None = Field(None, min_length=1, description="Several queries.")
    k: int = Field(10, ge=1, le=1000)
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
    channels: list[str]
    results: list[QueryResult]


class ChannelOut(BaseModel):
    name: str
    kind: str
    unit: str


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
    mode: str = "hybrid"


class ContextResponse(BaseModel):
    query: str
    context: str
    citations: list[dict[str, Any]]
    tokens: int
    prompt: str
