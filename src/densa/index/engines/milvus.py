"""Milvus through ``pymilvus``: milvus-lite (the Milvus engine embedded, one local file) or a
server URI.

A part is a collection ``(pid INT64 primary key, vector FLOAT_VECTOR)`` with strong
consistency (a search sees every acknowledged insert). densa's kinds map to Milvus index
types: ``flat`` FLAT, ``hnsw`` HNSW (``M``, ``efConstruction``, ``ef``), ``hnsw-sq8`` HNSW_SQ,
``ivf-flat`` IVF_FLAT, ``ivf-sq8`` IVF_SQ8, ``ivf-pq`` IVF_PQ (``nlist``, ``m``, ``nprobe``), all
on inner product. ``binary`` is refused (Milvus keeps binary vectors in another field type).
Points carry their documents' metadata in a JSON field ``meta``
(:mod:`densa.index.engines.payload`: keys are hashes of the field names). Filters become
expressions of densa's own making: keys are hex, point ids integers, and string values quoted
by :func:`literal`, so no value can change the expression.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from densa.errors import EngineError
from densa.index.engines.base import EngineLocation, Rows, Vectors, in_order
from densa.index.engines.payload import Value
from densa.index.vectors import VectorIndexConfig

__all__ = ["MilvusEngine", "open_engine"]

_TYPES = {
    "flat": "FLAT",
    "hnsw": "HNSW",
    "hnsw-sq8": "HNSW_SQ",
    "ivf-flat": "IVF_FLAT",
    "ivf-sq8": "IVF_SQ8",
    "ivf-pq": "IVF_PQ",
}


def open_engine(location: EngineLocation, storage: Path) -> MilvusEngine:
    # gRPC's C core logs keepalive chatter of milvus-lite ("too_many_pings") to stderr; errors
    # still reach densa as exceptions. Set before pymilvus loads grpc; a user's setting wins.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    from pymilvus import MilvusClient
    from pymilvus.exceptions import ConnectionConfigException

    if location.server is None:
        try:
            return MilvusEngine(MilvusClient(str(storage / "milvus.db")))
        except ConnectionConfigException as exc:  # milvus-lite: another process holds the file
            raise EngineError(
                f"{storage / 'milvus.db'} is open in another process: milvus-lite serves one "
                f"process at a time; use a Milvus server for several ({exc.message})"
            ) from None
    return MilvusEngine(MilvusClient(uri=location.server))


def index_params(config: VectorIndexConfig, dim: int, rows_hint: int) -> tuple[str, dict[str, Any]]:
    """The Milvus index type and build parameters for densa's ``config``."""
    kind = config.kind
    if kind.startswith("hnsw"):
        params: dict[str, Any] = {"M": config.hnsw_m, "efConstruction": config.ef_construction}
        if kind == "hnsw-sq8":
            params["sq_type"] = "SQ8"
        return _TYPES[kind], params
    if kind.startswith("ivf"):
        nlist = config.nlist or max(1, min(int(4 * math.sqrt(max(rows_hint, 1))), max(1, rows_hint // 39)))
        params = {"nlist": nlist}
        if kind == "ivf-pq":
            params.update(m=config.pq_m or dim // 8, nbits=8)
        return _TYPES[kind], params
    return "FLAT", {}


def literal(value: Value) -> str:
    """A Milvus expression literal of a filter value that no value can escape: numbers as
    floats (``repr``), strings double-quoted with ``\\`` and ``"`` escaped (control characters
    never get here: :func:`densa.index.engines.payload.engine_filter` keeps them out).

    Examples
    --------
    >>> print(literal('a" or pid >= 0 or "'), literal(2.0))
    "a\\" or pid >= 0 or \\"" 2.0
    """
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(float(value))


class MilvusEngine:
    def __init__(self, client: Any) -> None:
        self._client = client

    def create(self, collection: str, dim: int, config: VectorIndexConfig, rows: int, payload: bool) -> None:
        from pymilvus import DataType

        client = self._client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pid", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        if payload:
            schema.add_field("meta", DataType.JSON)
        index_type, params = index_params(config, dim, rows)
        indexes = client.prepare_index_params()
        indexes.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
        client.create_collection(collection, schema=schema, index_params=indexes, consistency_level="Strong")

    def insert(
        self, collection: str, first: int, vectors: Vectors, payloads: Sequence[Mapping[str, Value]] | None
    ) -> None:
        rows: list[dict[str, Any]] = [{"pid": first + i, "vector": v} for i, v in enumerate(vectors.tolist())]
        if payloads is not None:
            for row, payload in zip(rows, payloads, strict=True):
                row["meta"] = dict(payload)
        self._client.insert(collection, rows)

    def seal(self, collection: str) -> None:
        self._client.flush(collection)

    def count(self, collection: str) -> int:
        (answer,) = self._client.query(collection, filter="", output_fields=["count(*)"])
        return int(answer["count(*)"])

    def search(
        self,
        collection: str,
        queries: Vectors,
        k: int,
        ids: Rows | None,
        exclude: bool,
        config: VectorIndexConfig,
        where: Mapping[str, Value] | None = None,
    ) -> tuple[Vectors, Rows]:
        clauses = [f'meta["{key}"] == {literal(value)}' for key, value in (where or {}).items()]
        if ids is not None:  # integers written by densa
            clauses.append(f"pid {'not in' if exclude else 'in'} [{', '.join(str(int(i)) for i in ids)}]")
        expression = " and ".join(clauses)
        params: dict[str, Any] = {}
        if config.kind.startswith("hnsw"):
            params = {"ef": max(config.ef_search, k)}
        elif config.kind.startswith("ivf"):
            params = {"nprobe": config.nprobe}
        answers = self._client.search(
            collection,
            data=queries.tolist(),
            limit=k,
            filter=expression,
            anns_field="vector",
            output_fields=["pid"],
            search_params={"metric_type": "IP", "params": params},
        )
        scores = np.full((len(queries), k), -np.inf, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        for i, hits in enumerate(answers):
            for j, hit in enumerate(list(hits)[:k]):
                scores[i, j], rows[i, j] = hit.distance, int(hit.id)
        return scores, rows

    def vectors(self, collection: str, ids: Rows) -> Vectors:
        found = {
            int(r["pid"]): r["vector"]
            for r in self._client.get(collection, ids=ids.tolist(), output_fields=["vector"])
        }
        return in_order(found, ids, collection)

    def drop(self, collection: str) -> None:
        if self._client.has_collection(collection):
            self._client.drop_collection(collection)

    def collections(self) -> list[str]:
        return list(self._client.list_collections())

    def close(self) -> None:
        self._client.close()
