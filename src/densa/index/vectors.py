"""Vector indexes on FAISS, one :class:`VectorIndex` over several kinds.

=============  ===========================================  =========================
kind           FAISS                                         stores
=============  ===========================================  =========================
``flat``       ``IndexFlatIP``: exact search                 float32
``hnsw``       ``IndexHNSWFlat`` (Malkov & Yashunin 2018)    float32 + graph
``hnsw-sq8``   ``HNSW{M},SQ8``: graph over 8-bit scalars     int8 codes + graph
``ivf-flat``   ``IVF{nlist},Flat`` (Jégou et al. 2011)       float32 in inverted lists
``ivf-sq8``    ``IVF{nlist},SQ8``                            int8 codes
``ivf-pq``     ``IVF{nlist},PQ{m}x8`` (product quantisation) ``m`` bytes per vector
               then the top ``rescore * k`` rescored
``binary``     ``IndexBinaryFlat`` on sign bits, then the    1 bit per dimension
               top ``rescore * k`` rescored with floats
=============  ===========================================  =========================

Vectors live under integer ids (``IndexIDMap2``), so results map back to passages and
vectors can be removed. Scores are inner products (the encoder L2-normalises for cosine).
The lossy and trained kinds also keep the float vectors on disk (memory-mapped), used to
train IVF, to rescore binary candidates, to rebuild after deletes, and for exact search
under metadata filters (an IVF probe could miss allowed documents).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from densa.errors import ConfigError, DensaError

__all__ = ["IndexKind", "VectorIndex", "VectorIndexConfig"]

IndexKind = Literal["flat", "hnsw", "hnsw-sq8", "ivf-flat", "ivf-sq8", "ivf-pq", "binary"]
_EXACT = ("flat", "hnsw")  # the FAISS index itself holds the exact float vectors
_REMOVABLE = ("flat", "ivf-flat", "ivf-sq8", "ivf-pq")  # FAISS can remove ids in place
_TRAINED = ("hnsw-sq8", "ivf-flat", "ivf-sq8", "ivf-pq")  # need the vectors before the first add
_RESCORED = ("binary", "ivf-pq")  # coarse candidates re-ranked with the exact float vectors
_EXACT_FILTER_LIMIT = 20_000  # filters allowing at most this many ids are scored exactly
_RAW, _RAW_IDS = "raw-vectors.npy", "raw-ids.npy"

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]


@dataclass(frozen=True)
class VectorIndexConfig:
    """Which FAISS index to build.

    Parameters
    ----------
    kind
        See the module table.
    hnsw_m, ef_construction, ef_search
        HNSW neighbours per node, and beam widths when building and searching.
    nlist
        IVF lists (``None``: about ``4 sqrt(n)``, at least 1, at most n / 39).
    nprobe
        IVF lists visited per query. 32 gave recall@10 0.97 against exact search both on SciFact
        (5k vectors, 132 lists) and on 1M vectors (4,096 lists); 16 gave 0.92 on SciFact.
    pq_m
        PQ sub-quantisers, i.e. bytes per vector (``None``: ``dim / 8``); must divide ``dim``.
    rescore
        Binary and IVF-PQ: candidates rescored with the float vectors, as a multiple of ``k``.
    """

    kind: IndexKind = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int = 32
    pq_m: int | None = None
    rescore: int = 10

    def __post_init__(self) -> None:
        if self.kind not in get_args(IndexKind):
            raise ConfigError(f"index kind must be one of {get_args(IndexKind)}, got {self.kind!r}")
        if min(self.hnsw_m, self.ef_construction, self.ef_search, self.nprobe, self.rescore) < 1:
            raise ConfigError("index parameters must be positive")
        if (self.nlist is not None and self.nlist < 1) or (self.pq_m is not None and self.pq_m < 1):
            raise ConfigError("nlist and pq_m must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VectorIndexConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _faiss() -> Any:
    # typed as Any: faiss's stubs lack the search-parameter and binary classes
    return importlib.import_module("faiss")


class VectorIndex:
    """A FAISS index over ``(id, vector)`` pairs with inner-product search."""

    def __init__(
        self, dim: int, config: VectorIndexConfig, index: Any, raw: Vectors | None, raw_ids: Ids | None
    ) -> None:
        self._dim = dim
        self.config = config
        self._index = index  # None for an IVF kind that is not trained yet
        self._raw = raw
        self._raw_ids = raw_ids
        # ids sorted, and the row each sorted id sits at (float store, or id map): built on use
        self._lookup: tuple[Ids, Ids] | None = None
        self._apply_search_params()

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, dim: int, config: VectorIndexConfig) -> VectorIndex:
        if config.kind == "ivf-pq" and dim % (config.pq_m or dim // 8 or 1):
            raise ConfigError(f"pq_m={config.pq_m} must divide the dimension {dim}")
        lossy = config.kind not in _EXACT
        raw = np.zeros((0, dim), np.float32) if lossy else None
        raw_ids = np.zeros(0, np.int64) if lossy else None
        index = None if config.kind in _TRAINED else cls._new_faiss(dim, config, 0)
        return cls(dim, config, index, raw, raw_ids)

    @staticmethod
    def _new_faiss(dim: int, config: VectorIndexConfig, n: int) -> Any:
        faiss = _faiss()
        if config.kind == "binary":
            if dim % 8:
                raise ConfigError("binary indexes need a dimension divisible by 8")
            return faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(dim))
        if config.kind == "flat":
            base = faiss.IndexFlatIP(dim)
        elif config.kind == "hnsw":
            base = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        elif config.kind == "hnsw-sq8":
            base = faiss.index_factory(dim, f"HNSW{config.hnsw_m},SQ8", faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = config.nlist or max(1, min(int(4 * math.sqrt(max(n, 1))), max(1, n // 39)))
            codec = {"ivf-flat": "Flat", "ivf-sq8": "SQ8", "ivf-pq": f"PQ{config.pq_m or dim // 8}x8"}[
                config.kind
            ]
            base = faiss.index_factory(dim, f"IVF{nlist},{codec}", faiss.METRIC_INNER_PRODUCT)
        if config.kind.startswith("hnsw"):
            faiss.downcast_index(base).hnsw.efConstruction = config.ef_construction
        return faiss.IndexIDMap2(base)

    @classmethod
    def load(cls, path: Path, config: VectorIndexConfig) -> VectorIndex:
        faiss = _faiss()
        if not path.is_file():
            raise DensaError(f"vector file missing: {path}")
        raw = raw_ids = None
        if config.kind not in _EXACT:
            raw = np.load(path.parent / _RAW, mmap_mode="r", allow_pickle=False)
            raw_ids = np.load(path.parent / _RAW_IDS, allow_pickle=False)
        index = faiss.read_index_binary(str(path)) if config.kind == "binary" else faiss.read_index(str(path))
        return cls(raw.shape[1] if raw is not None else int(index.d), config, index, raw, raw_ids)

    def save(self, path: Path) -> None:
        faiss = _faiss()
        self._ensure_trained()
        if self.config.kind == "binary":
            faiss.write_index_binary(self._index, str(path))
        else:
            faiss.write_index(self._index, str(path))
        if self._raw is not None and self._raw_ids is not None:
            np.save(path.parent / _RAW, np.ascontiguousarray(self._raw), allow_pickle=False)
            np.save(path.parent / _RAW_IDS, self._raw_ids, allow_pickle=False)

    def set_search_params(
        self, *, ef_search: int | None = None, nprobe: int | None = None, rescore: int | None = None
    ) -> None:
        """Change search-time parameters in place (HNSW ``efSearch``, IVF ``nprobe``, the
        rescoring depth of binary / IVF-PQ): the recall / latency trade-off, without a rebuild."""
        config = self.config
        self.config = replace(
            config,
            ef_search=config.ef_search if ef_search is None else ef_search,
            nprobe=config.nprobe if nprobe is None else nprobe,
            rescore=config.rescore if rescore is None else rescore,
        )
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        faiss = _faiss()
        if self._index is None or self.config.kind == "binary":
            return
        inner = faiss.downcast_index(self._index.index)
        if self.config.kind.startswith("hnsw"):
            inner.hnsw.efSearch = self.config.ef_search
        elif self.config.kind.startswith("ivf"):
            inner.nprobe = self.config.nprobe

    def _ensure_trained(self) -> None:
        """Trained kinds (SQ8, IVF) fit their quantisers on the stored float vectors on first need."""
        if self._index is not None:
            return
        assert self._raw is not None and self._raw_ids is not None
        if not len(self._raw):
            raise DensaError(f"cannot train a {self.config.kind} index on zero vectors")
        index = self._new_faiss(self._dim, self.config, len(self._raw))
        sample = self._raw if len(self._raw) <= 200_000 else self._raw[:: len(self._raw) // 200_000]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.add_with_ids(np.ascontiguousarray(self._raw, dtype=np.float32), self._raw_ids)
        self._index = index
        self._apply_search_params()

    # ---------------------------------------------------------------- data
    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        if self._raw_ids is not None:
            return len(self._raw_ids)
        return int(self._index.ntotal)

    def add(self, vectors: Vectors, ids: list[int]) -> None:
        """Add vectors of shape ``(n, dim)`` under the given ids."""
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        id_array = np.asarray(ids, dtype=np.int64)
        if self._raw is not None and self._raw_ids is not None:
            self._raw = np.concatenate([self._raw, vectors])
            self._raw_ids = np.concatenate([self._raw_ids, id_array])
        self._lookup = None
        if self._index is None:
            return  # not trained yet: kept in the float store until save / search
        if self.config.kind == "binary":
            self._index.add_with_ids(np.packbits(vectors > 0, axis=1), id_array)
        else:
            self._index.add_with_ids(vectors, id_array)

    def remove(self, ids: list[int]) -> None:
        """Remove vectors by id (kinds that cannot remove in place are rebuilt without them)."""
        if not ids:
            return
        drop = np.asarray(ids, dtype=np.int64)
        self._lookup = None
        if self.config.kind in _REMOVABLE and self._index is not None:
            self._index.remove_ids(drop)
            if self._raw is not None and self._raw_ids is not None:
                keep = ~np.isin(self._raw_ids, drop)
                self._raw, self._raw_ids = np.asarray(self._raw)[keep], self._raw_ids[keep]
            return
        dropped = set(ids)
        kept = [i for i in self.ids() if i not in dropped]
        vectors = self.reconstruct(kept)
        rebuilt = VectorIndex.create(self.dim, self.config)
        rebuilt.add(vectors, kept)
        self._index, self._raw, self._raw_ids = rebuilt._index, rebuilt._raw, rebuilt._raw_ids
        self._lookup = None
        self._apply_search_params()

    def ids(self) -> list[int]:
        if self._raw_ids is not None:
            return [int(i) for i in self._raw_ids]
        return [int(i) for i in _faiss().vector_to_array(self._index.id_map)]

    def reconstruct(self, ids: list[int]) -> Vectors:
        """The exact float vectors stored under ``ids``."""
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._raw is not None:
            rows = self._rows(np.asarray(ids, dtype=np.int64))
            if (rows < 0).any():
                raise KeyError(f"no vector stored under id {ids[int(np.argmax(rows < 0))]}")
            return np.asarray(self._raw[rows], dtype=np.float32)
        return np.stack([self._index.reconstruct(int(i)) for i in ids]).astype(np.float32)

    def _rows(self, ids: Ids) -> Ids:
        """The row of each id in the float store (or in the id map, for the exact kinds); -1
        for ids not stored. A binary search over the sorted ids (8 + 8 bytes per vector, not a
        Python dict)."""
        if self._lookup is None:
            stored = self._raw_ids if self._raw_ids is not None else np.asarray(self.ids(), dtype=np.int64)
            order = np.argsort(stored, kind="stable")
            self._lookup = (stored[order], order)
        ordered, order = self._lookup
        if not len(ordered):
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(ordered, ids), len(ordered) - 1)
        return np.where(ordered[at] == ids, order[at], -1).astype(np.int64)

    def memory_bytes(self) -> int:
        """Bytes the search structure holds per the kind's codes (without the float store)."""
        if self.config.kind == "binary":
            return len(self) * self.dim // 8
        bytes_per = {"flat": 4 * self.dim, "hnsw": 4 * self.dim, "ivf-flat": 4 * self.dim}.get(
            self.config.kind,
            self.dim if self.config.kind.endswith("sq8") else (self.config.pq_m or self.dim // 8),
        )
        return len(self) * bytes_per

    # --------------------------------------------------------------- search
    def search(self, queries: Vectors, k: int, allowed: list[int] | None = None) -> tuple[Vectors, Ids]:
        """Top-``k`` ``(scores, ids)``, each of shape ``(n_queries, k)``; missing slots have id -1.

        Parameters
        ----------
        allowed
            Only these ids may be returned; ``None`` allows all.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not len(self):
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = max(1, min(k, len(self)))
        if allowed is not None:
            if not allowed:
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
            if self.config.kind == "flat" or (
                self.config.kind == "hnsw" and len(allowed) > _EXACT_FILTER_LIMIT
            ):
                return self._selected(queries, min(k, len(allowed)), allowed)
            return self._exact_subset(queries, k, allowed)
        self._ensure_trained()
        if self.config.kind in _RESCORED:
            return self._rescored(queries, k)
        scores, ids = self._index.search(queries, k)
        return scores, ids

    def _selected(self, queries: Vectors, k: int, allowed: list[int]) -> tuple[Vectors, Ids]:
        faiss = _faiss()
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if self.config.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.config.ef_search)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    def _exact_subset(self, queries: Vectors, k: int, allowed: list[int]) -> tuple[Vectors, Ids]:
        """Exact inner products against the float vectors of the allowed ids (a graph or an
        inverted-list probe under a selective filter can miss allowed ids)."""
        wanted = np.asarray(allowed, dtype=np.int64)
        present = wanted[self._rows(wanted) >= 0].tolist()
        if not present:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return _top_k(
            queries @ self.reconstruct(present).T, np.asarray(present, np.int64), min(k, len(present))
        )

    def _rescored(self, queries: Vectors, k: int) -> tuple[Vectors, Ids]:
        """Coarse search (Hamming on sign bits, or PQ codes), then exact float scores of the
        ``rescore * k`` best candidates."""
        depth = min(len(self), k * self.config.rescore)
        coarse = np.packbits(queries > 0, axis=1) if self.config.kind == "binary" else queries
        _, candidates = self._index.search(coarse, depth)
        scores_out = np.full((len(queries), k), -np.inf, np.float32)
        ids_out = np.full((len(queries), k), -1, np.int64)
        for row, (query, found) in enumerate(zip(queries, candidates, strict=True)):
            found = found[found >= 0]
            s, i = _top_k(query[None, :] @ self.reconstruct(found.tolist()).T, found, min(k, len(found)))
            scores_out[row, : s.shape[1]], ids_out[row, : i.shape[1]] = s[0], i[0]
        return scores_out, ids_out


def _top_k(scores: npt.NDArray[np.float32], ids: Ids, k: int) -> tuple[Vectors, Ids]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1).astype(np.float32), ids[order]
