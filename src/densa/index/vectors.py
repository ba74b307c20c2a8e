"""Vector indexes on FAISS: exact inner product (``flat``) and HNSW graphs (``hnsw``).

Vectors are stored under the document store's row ids (``IndexIDMap2``), so results map
back to documents and vectors can be removed by id. Scores are inner products; for
cosine similarity the encoder has already L2-normalised the vectors.

HNSW: Malkov & Yashunin 2018, "Efficient and robust approximate nearest neighbor search
using Hierarchical Navigable Small World graphs".
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from densa.errors import ConfigError, DensaError

__all__ = ["IndexKind", "VectorIndex", "VectorIndexConfig"]

IndexKind = Literal["flat", "hnsw"]


@dataclass(frozen=True)
class VectorIndexConfig:
    """Which FAISS index to build.

    Parameters
    ----------
    kind
        ``flat``: exact search. ``hnsw``: approximate graph search.
    hnsw_m
        Neighbours per node in the HNSW graph.
    ef_construction, ef_search
        HNSW beam widths when building and when searching (higher: better recall, slower).
    """

    kind: IndexKind = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "hnsw"):
            raise ConfigError(f"index kind must be 'flat' or 'hnsw', got {self.kind!r}")
        if min(self.hnsw_m, self.ef_construction, self.ef_search) < 1:
            raise ConfigError("HNSW parameters must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VectorIndexConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class VectorIndex:
    """A FAISS index over ``(id, vector)`` pairs with inner-product search."""

    def __init__(self, index: Any, config: VectorIndexConfig) -> None:
        self._index = index
        self.config = config
        self._apply_search_params()

    @classmethod
    def create(cls, dim: int, config: VectorIndexConfig) -> VectorIndex:
        import faiss

        base: Any
        if config.kind == "flat":
            base = faiss.IndexFlatIP(dim)
        else:
            base = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = config.ef_construction
        return cls(faiss.IndexIDMap2(base), config)

    @classmethod
    def load(cls, path: Path, config: VectorIndexConfig) -> VectorIndex:
        import faiss

        if not path.is_file():
            raise DensaError(f"vector file missing: {path}")
        return cls(faiss.read_index(str(path)), config)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    def _apply_search_params(self) -> None:
        import faiss

        if self.config.kind == "hnsw":
            hnsw: Any = faiss.downcast_index(self._index.index)
            hnsw.hnsw.efSearch = self.config.ef_search

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: npt.NDArray[np.float32], ids: list[int]) -> None:
        """Add vectors of shape ``(n, dim)`` under the given ids."""
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        self._index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )

    def remove(self, ids: list[int]) -> None:
        """Remove vectors by id (HNSW graphs are rebuilt without them)."""
        if not ids:
            return
        if self.config.kind == "flat":
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))
            return
        drop = set(ids)
        keep = [i for i in self.ids() if i not in drop]
        vectors = self.reconstruct(keep)
        rebuilt = VectorIndex.create(self.dim, self.config)
        rebuilt.add(vectors, keep)
        self._index = rebuilt._index
        self._apply_search_params()

    def ids(self) -> list[int]:
        import faiss

        return [int(i) for i in faiss.vector_to_array(self._index.id_map)]

    def reconstruct(self, ids: list[int]) -> npt.NDArray[np.float32]:
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._index.reconstruct(int(i)) for i in ids]).astype(np.float32)

    def search(
        self, queries: npt.NDArray[np.float32], k: int, allowed: list[int] | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top-``k`` ``(scores, ids)``, each of shape ``(n_queries, k)``; missing slots have id -1.

        Parameters
        ----------
        allowed
            Only these ids may be returned (FAISS ``IDSelectorBatch``); ``None`` allows all.
        """
        faiss: Any = importlib.import_module("faiss")  # its stubs lack the search-parameter classes
        k = max(1, min(k, len(self))) if len(self) else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is None:
            scores, ids = self._index.search(queries, k)
            return scores, ids
        if not allowed:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        params: Any
        if self.config.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.config.ef_search)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, ids = self._index.search(queries, min(k, len(allowed)), params=params)
        return scores, ids
