"""Qdrant through ``qdrant-client``: local mode (``path=``, embedded) or a server URL.

A part is a collection with one unnamed vector per point (dot product: densa's vectors are
normalised for cosine). densa's kinds map to Qdrant's own index: ``flat`` is an exact search,
``hnsw`` the HNSW graph (``m``, ``ef_construct``, ``hnsw_ef``), ``hnsw-sq8`` HNSW over int8
scalar quantisation, ``binary`` binary quantisation with rescoring. Points carry their
documents' metadata as payload (:mod:`densa.index.engines.payload`); filters on it are payload
conditions (exact match for strings, a one-value range for numbers). Qdrant has no IVF index:
the ``ivf-*`` kinds are refused. Local mode searches exactly whatever the kind (it is
Qdrant's in-process test engine); a server builds the index the kind names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from densa.errors import EngineError
from densa.index.engines.base import EngineLocation, Rows, Vectors, in_order
from densa.index.engines.payload import Value
from densa.index.vectors import VectorIndexConfig

__all__ = ["QdrantEngine", "open_engine"]


def open_engine(location: EngineLocation, storage: Path) -> QdrantEngine:
    from qdrant_client import QdrantClient

    if location.server is None:
        try:
            return QdrantEngine(QdrantClient(path=str(storage)), local=True)
        except RuntimeError as exc:  # portalocker: another process holds the local storage
            raise EngineError(
                f"{storage} is open in another process: Qdrant's local mode serves one process "
                f"at a time; use a Qdrant server for several ({exc})"
            ) from None
    return QdrantEngine(QdrantClient(url=location.server))


class QdrantEngine:
    def __init__(self, client: Any, *, local: bool = False) -> None:
        from qdrant_client import models

        self._client = client
        self._models = models
        self._local = local  # local mode searches exactly and refuses search parameters

    def create(self, collection: str, dim: int, config: VectorIndexConfig, rows: int, payload: bool) -> None:
        m = self._models  # payload needs no schema
        hnsw = m.HnswConfigDiff(
            m=0 if config.kind == "flat" else config.hnsw_m, ef_construct=config.ef_construction
        )
        quantization: Any = None
        if config.kind == "hnsw-sq8":
            quantization = m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8))
        elif config.kind == "binary":
            quantization = m.BinaryQuantization(binary=m.BinaryQuantizationConfig())
        self._client.create_collection(
            collection,
            vectors_config=m.VectorParams(size=dim, distance=m.Distance.DOT),
            hnsw_config=hnsw,
            quantization_config=quantization,
        )

    def insert(
        self, collection: str, first: int, vectors: Vectors, payloads: Sequence[Mapping[str, Value]] | None
    ) -> None:
        ids: list[Any] = list(range(first, first + len(vectors)))
        batch = self._models.Batch(
            ids=ids, vectors=vectors.tolist(), payloads=[dict(p) for p in payloads] if payloads else None
        )
        self._client.upsert(collection, points=batch, wait=True)

    def seal(self, collection: str) -> None:
        pass  # upserts waited for (wait=True); the server indexes in the background

    def count(self, collection: str) -> int:
        return int(self._client.count(collection, exact=True).count)

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
        m = self._models
        must: list[Any] = [
            m.FieldCondition(key=key, match=m.MatchValue(value=value))
            if isinstance(value, str)
            else m.FieldCondition(key=key, range=m.Range(gte=value, lte=value))
            for key, value in (where or {}).items()
        ]
        must_not: list[Any] = []
        if ids is not None:
            (must_not if exclude else must).append(m.HasIdCondition(has_id=ids.tolist()))
        where_filter = m.Filter(must=must or None, must_not=must_not or None) if must or must_not else None
        quantization = None
        if config.kind in ("hnsw-sq8", "binary"):
            quantization = m.QuantizationSearchParams(rescore=True, oversampling=float(config.rescore))
        params = (
            None
            if self._local
            else m.SearchParams(
                hnsw_ef=config.ef_search, exact=config.kind == "flat", quantization=quantization
            )
        )
        requests = [
            m.QueryRequest(query=q.tolist(), limit=k, filter=where_filter, params=params) for q in queries
        ]
        answers = self._client.query_batch_points(collection, requests=requests)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        for i, answer in enumerate(answers):
            for j, point in enumerate(answer.points[:k]):
                scores[i, j], rows[i, j] = point.score, int(point.id)
        return scores, rows

    def vectors(self, collection: str, ids: Rows) -> Vectors:
        points = self._client.retrieve(collection, ids=ids.tolist(), with_vectors=True, with_payload=False)
        found = {int(p.id): p.vector for p in points}
        return in_order(found, ids, collection)

    def drop(self, collection: str) -> None:
        if self._client.collection_exists(collection):
            self._client.delete_collection(collection)

    def collections(self) -> list[str]:
        return [c.name for c in self._client.get_collections().collections]

    def close(self) -> None:
        self._client.close()
