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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    create_model,
    field_validator,
    model_validator,
)

from densa.corpus.readers import MAX_METADATA_DEPTH, metadata_depth
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
    "WriteResult",
    "search_config",
]

Scalar = StrictStr | StrictInt | float | StrictBool | None
#: JSON types are taken as they are: a number is not a string, ``true`` is not 1.
_STRICT: dict[Any, Any] = {int: StrictInt, bool: StrictBool, str: StrictStr}


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
            fields[f.name] = (_STRICT.get(kind, kind), getattr(defaults, f.name))
    model: type[BaseModel] = create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    model.__doc__ = (config.__doc__ or "").split("\n\n")[0]
    return model


FusionOptions = _options_model(FusionConfig, "FusionOptions", {})
SearchOptions = _options_model(SearchConfig, "SearchOptions", {FusionConfig: FusionOptions})


def search_config(options: BaseModel, defaults: SearchConfig) -> SearchConfig:
    """The :class:`SearchConfig` a request asks for (its checks raise ``ConfigError``): the
    server's ``defaults`` with the options the request sets (its ``fusion`` as a whole)."""
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(SearchConfig)}
    fusion = values.pop("fusion")
    config = SearchConfig(fusion=FusionConfig(**fusion.model_dump()) if fusion else FusionConfig(), **values)
    given = {f.name for f in dataclasses.fields(SearchConfig)} & options.model_fields_set
    return dataclasses.replace(defaults, **{name: getattr(config, name) for name in given})


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain something other than white space")
    return text


class SearchRequest(SearchOptions):  # type: ignore[misc, valid-type]
    """One query or many, how many hits, a metadata filter, reranking, and search options.

    Search options and ``rerank`` left out take the server's (``densa serve --pipeline FILE``
    or ``--rerank-weight``), which may differ from the defaults shown here.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["query"]}, {"required": ["queries"]}]},
    )

    query: StrictStr | None = Field(None, min_length=1, description="One query (or use `queries`).")
    queries: list[StrictStr] | None = Field(None, min_length=1, description="Several queries.")
    k: StrictInt = Field(10, ge=1, le=1000)
    rerank: StrictBool = Field(
        False, description="Rerank with the server's reranker (left out: its own default)."
    )
    filter: dict[str, Scalar] | None = Field(None, description="Metadata field -> value every hit must have.")

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        return None if value is None else _not_blank(value)

    @field_validator("queries")
    @classmethod
    def _queries(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_not_blank(q) for q in value]

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if not key.strip() or any(ord(c) < 32 for c in key):
                raise ValueError(f"filter field {key!r}: a name without control characters")
        return value

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


class WriteResult(BaseModel):
    documents: int = Field(description="Live documents in the index after the write.")
    added: int | None = None
    deleted: str | None = None


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr = Field(min_length=1, max_length=512)
    text: StrictStr = Field(min_length=1)
    title: StrictStr = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", "text")
    @classmethod
    def _filled(cls, value: str) -> str:
        return _not_blank(value)

    @field_validator("metadata")
    @classmethod
    def _shallow(cls, value: dict[str, Any]) -> dict[str, Any]:
        if metadata_depth(value) > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        return value


class DocumentOut(DocumentIn):
    pass


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class ContextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: StrictStr = Field(min_length=1)
    k: StrictInt = Field(5, ge=1, le=100)
    max_tokens: StrictInt = Field(512, ge=16, le=32_768)
    mode: StrictStr = "hybrid"

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        return _not_blank(value)


class ContextResponse(BaseModel):
    query: str
    context: str
    citations: list[dict[str, Any]]
    tokens: int
    prompt: str
