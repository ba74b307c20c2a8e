"""Vector indexes on FAISS: one :class:`VectorIndex` over several kinds.

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

A :class:`VectorIndex` is immutable, like the segment it belongs to: it is built once from
all its vectors, whose rows ``0 .. n-1`` are its ids. Scores are inner products (the
encoder L2-normalises for cosine). The lossy kinds also keep the float vectors on disk
(memory-mapped), to rescore candidates, to merge segments without re-encoding, and for
exact search under selective masks (an IVF probe or a graph walk could miss allowed rows).
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from densa.errors import ConfigError, IndexDamagedError

__all__ = ["IndexKind", "VectorIndex", "VectorIndexConfig"]

IndexKind = Literal["flat", "hnsw", "hnsw-sq8", "ivf-flat", "ivf-sq8", "ivf-pq", "binary"]
_EXACT = ("flat", "hnsw")  # the FAISS index itself holds the exact float vectors
_RESCORED = ("binary", "ivf-pq")  # coarse candidates re-ranked with the exact float vectors
_EXACT_MASK_LIMIT = 20_000  # masks allowing at most this many rows are scored exactly
_SCORE_BLOCK = 1 << 24  # flat search: query-by-vector scores held at once (64 MiB of float32)
_BLAS_MIN_QUERIES = 16  # flat search: batches from this size are scored by one BLAS product
_FAISS, _RAW, _META = "vectors.faiss", "raw-vectors.npy", "vectors.json"

Vectors = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


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
    exact_below
        A segment written by an update (``add``, or a merge) with fewer vectors than this is
        stored exactly (``flat``) whatever ``kind`` says, as Milvus keeps growing segments and
        Qdrant segments under its ``indexing_threshold``: a small exact search costs about as
        much as a graph walk, and IVF/PQ cannot be trained on a few vectors. A build and
        ``densa optimize`` always make ``kind``.
    engine
        Keep the vectors in an external engine instead of FAISS files (see
        :mod:`densa.index.engines`): ``qdrant`` or ``milvus`` embedded in the index folder, or
        ``qdrant+http://HOST:6333`` / ``milvus://HOST:19530`` for a server; ``kind`` and its
        parameters then choose the engine's own index.
    """

    kind: IndexKind = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int = 32
    pq_m: int | None = None
    rescore: int = 10
    exact_below: int = 20_000
    engine: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in get_args(IndexKind):
            raise ConfigError(f"index kind must be one of {get_args(IndexKind)}, got {self.kind!r}")
        if min(self.hnsw_m, self.ef_construction, self.ef_search, self.nprobe, self.rescore) < 1:
            raise ConfigError("index parameters must be positive")
        if (self.nlist is not None and self.nlist < 1) or (self.pq_m is not None and self.pq_m < 1):
            raise ConfigError("nlist and pq_m must be positive")
        if self.exact_below < 0:
            raise ConfigError("exact_below must be >= 0")
        if self.engine is not None:
            from densa.index.engines.base import EngineLocation, check_kind

            location = EngineLocation.parse(self.engine)
            check_kind(location, self.kind)
            object.__setattr__(self, "engine", str(location))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.engine is None:  # as before engines: the manifests of FAISS channels are unchanged
            del out["engine"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VectorIndexConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def check(self, dim: int) -> None:
        """Raise if this kind cannot index vectors of ``dim`` dimensions."""
        if self.kind == "ivf-pq" and dim % (self.pq_m or dim // 8 or 1):
            raise ConfigError(f"pq_m={self.pq_m} must divide the dimension {dim}")
        if self.kind == "binary" and dim % 8:
            raise ConfigError("binary indexes need a dimension divisible by 8")


def _faiss() -> Any:
    # typed as Any: faiss's stubs lack the search-parameter and binary classes
    return importlib.import_module("faiss")


def set_search_threads(threads: int) -> None:
    """Threads of every FAISS call and BLAS product (flat search) in this process (their
    default: all cores).

    A server runs searches side by side on its own threads; there, one thread per search
    costs less CPU: FAISS's OpenMP workers spin-wait after each small parallel search, on the
    cores the other requests need (measured: about 0.8 ms of CPU per hybrid search on
    SciFact, 2 cores).
    """
    if threads < 1:
        raise ConfigError(f"FAISS threads must be positive, not {threads}")
    _faiss().omp_set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")  # process-wide, kept (not a context)


class VectorIndex:
    """An immutable FAISS index over rows ``0 .. n-1``, searched by inner product."""

    def __init__(self, config: VectorIndexConfig, index: Any, raw: Vectors | None, dim: int) -> None:
        self.config = config
        self._index = index
        self._raw = raw
        self._dim = dim
        self._apply_search_params()

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def build(cls, vectors: Vectors, config: VectorIndexConfig) -> VectorIndex:
        """Index ``vectors`` (shape ``(n, dim)``; row i gets id i)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        config.check(dim)
        index = cls._new_faiss(dim, config, n)
        if config.kind == "binary":
            index.add(np.packbits(vectors > 0, axis=1))
        elif n:
            if config.kind in ("hnsw-sq8", "ivf-flat", "ivf-sq8", "ivf-pq"):
                sample = vectors if n <= 200_000 else vectors[:: n // 200_000]
                index.train(np.ascontiguousarray(sample))
            index.add(vectors)
        raw = vectors if config.kind not in _EXACT else None
        return cls(config, index, raw, dim)

    @staticmethod
    def _new_faiss(dim: int, config: VectorIndexConfig, n: int) -> Any:
        faiss = _faiss()
        if config.kind == "binary":
            return faiss.IndexBinaryFlat(dim)
        if config.kind == "flat":
            return faiss.IndexFlatIP(dim)
        if config.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        elif config.kind == "hnsw-sq8":
            index = faiss.index_factory(dim, f"HNSW{config.hnsw_m},SQ8", faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = config.nlist or max(1, min(int(4 * math.sqrt(max(n, 1))), max(1, n // 39)))
            codec = {"ivf-flat": "Flat", "ivf-sq8": "SQ8", "ivf-pq": f"PQ{config.pq_m or dim // 8}x8"}[
                config.kind
            ]
            return faiss.index_factory(dim, f"IVF{min(nlist, max(n, 1))},{codec}", faiss.METRIC_INNER_PRODUCT)
        faiss.downcast_index(index).hnsw.efConstruction = config.ef_construction
        return index

    def save(self, folder: Path) -> int:
        """Write the index (and the float store of lossy kinds) into ``folder``; returns bytes."""
        faiss = _faiss()
        folder.mkdir(parents=True, exist_ok=True)
        if self.config.kind == "binary":
            faiss.write_index_binary(self._index, str(folder / _FAISS))
        else:
            faiss.write_index(self._index, str(folder / _FAISS))
        if self._raw is not None:
            np.save(folder / _RAW, np.ascontiguousarray(self._raw), allow_pickle=False)
        meta = {"config": self.config.to_dict(), "rows": len(self), "dim": self.dim}
        (folder / _META).write_text(json.dumps(meta), encoding="utf-8")
        return sum(p.stat().st_size for p in (folder / _FAISS, folder / _RAW, folder / _META) if p.exists())

    @classmethod
    def load(cls, folder: Path) -> VectorIndex:
        """Open a saved index; the float store is memory-mapped."""
        faiss = _faiss()
        try:
            meta = json.loads((folder / _META).read_text(encoding="utf-8"))
            config = VectorIndexConfig.from_dict(meta["config"])
            reader = faiss.read_index_binary if config.kind == "binary" else faiss.read_index
            index = reader(str(folder / _FAISS))
            raw = None if config.kind in _EXACT else np.load(folder / _RAW, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexDamagedError(f"{folder}: vector part missing or damaged ({exc})") from None
        loaded = cls(config, index, raw, int(meta["dim"]))
        if len(loaded) != int(meta["rows"]) or (raw is not None and raw.shape != (meta["rows"], meta["dim"])):
            raise IndexDamagedError(f"{folder}: vector files do not agree with each other (damaged)")
        return loaded

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
        if self.config.kind.startswith("hnsw"):
            _faiss().downcast_index(self._index).hnsw.efSearch = self.config.ef_search
        elif self.config.kind.startswith("ivf"):
            _faiss().extract_index_ivf(self._index).nprobe = self.config.nprobe

    # ---------------------------------------------------------------- data
    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def reconstruct(self, rows: Rows) -> Vectors:
        """The exact float vectors of ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float32)
        if rows.min() < 0 or rows.max() >= len(self):
            raise KeyError(f"rows outside 0..{len(self) - 1}")
        if self._raw is not None:
            return np.asarray(self._raw[rows], dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(rows), dtype=np.float32)

    def all_vectors(self) -> Vectors:
        """Every stored float vector, in row order."""
        if self._raw is not None:
            return np.asarray(self._raw, dtype=np.float32)
        return np.asarray(self._index.reconstruct_n(0, len(self)), dtype=np.float32).reshape(-1, self.dim)

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
    def search(self, queries: Vectors, k: int, allowed: Mask | None = None) -> tuple[Vectors, Rows]:
        """Top-``k`` ``(scores, rows)``, each of shape ``(n_queries, k)``; missing slots are -1.

        Parameters
        ----------
        allowed
            Which rows may be returned, shape ``(n,)``; ``None`` allows all.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = len(self)
        empty = np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if not n:
            return empty
        k = max(1, min(k, n))
        if allowed is not None:
            count = int(np.count_nonzero(allowed))
            if not count:
                return empty
            if count < n:
                if count <= _EXACT_MASK_LIMIT:
                    return self._exact_subset(queries, min(k, count), np.flatnonzero(allowed))
                if self.config.kind == "flat":
                    return self._flat(queries, min(k, count), allowed)
                if self.config.kind in _RESCORED:
                    return self._rescored(queries, min(k, count), allowed, count)
                return self._selected(queries, min(k, count), allowed)
        if self.config.kind in _RESCORED:
            return self._rescored(queries, k, None, n)
        if self.config.kind == "flat":
            return self._flat(queries, k, None)
        scores, rows = self._index.search(queries, k)
        return scores, rows

    def _flat(self, queries: Vectors, k: int, allowed: Mask | None) -> tuple[Vectors, Rows]:
        """Exact top-``k`` of ``flat``: FAISS's own search for fewer than
        :data:`_BLAS_MIN_QUERIES` unmasked queries, else BLAS products over its float store.

        ``vectors @ queries.T`` reads the vectors once for a whole batch of queries. FAISS's
        flat search reads them once per query below ``distance_compute_blas_threshold``
        queries (128,000 in faiss-cpu 1.15). ``bench/results/flat_search.md``, one thread, on
        an AMD EPYC: 100,000 vectors, 16 queries 118 ms against 36 (the product alone), 32
        queries 206 against 61; but 2 queries 14 against 29, and at 5,183 vectors FAISS wins
        below 16 queries (its scans stay in the cache). On the Intel Xeon of an earlier
        round the product won from 6 queries at both sizes.
        """
        if allowed is None and len(queries) < _BLAS_MIN_QUERIES:
            scores, rows = self._index.search(queries, k)
            return scores, rows
        store = self._flat_store()
        nq = len(queries)
        scores_out = np.empty((nq, k), np.float32)
        rows_out = np.empty((nq, k), np.int64)
        step = max(1, _SCORE_BLOCK // len(store))
        for start in range(0, nq, step):
            block = slice(start, start + step)
            scores_out[block], rows_out[block] = _exact_top_k(store, queries[block], k, allowed)
        return scores_out, rows_out

    def _flat_store(self) -> Vectors:
        """The ``(n, dim)`` float32 vectors inside the FAISS flat index (a view, no copy)."""
        index = self._index
        flat = _faiss().rev_swig_ptr(index.get_xb(), index.ntotal * index.d)
        return np.asarray(flat).reshape(index.ntotal, index.d)

    def _selected(self, queries: Vectors, k: int, allowed: Mask) -> tuple[Vectors, Rows]:
        """FAISS's own search (a graph or inverted lists) restricted by a bitmap selector."""
        faiss = _faiss()
        bitmap = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        if self.config.kind.startswith("hnsw"):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.config.ef_search)
        else:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self.config.nprobe)
        scores, rows = self._index.search(queries, k, params=params)
        return scores, rows

    def _exact_subset(self, queries: Vectors, k: int, rows: Rows) -> tuple[Vectors, Rows]:
        """Exact inner products against the float vectors of the allowed rows (a graph or an
        inverted-list probe under a selective mask can miss allowed rows)."""
        scores, found = _exact_top_k(self.reconstruct(rows), queries, k)
        return scores, rows[found]

    def _rescored(self, queries: Vectors, k: int, allowed: Mask | None, count: int) -> tuple[Vectors, Rows]:
        """Coarse search (Hamming on sign bits, or PQ codes), then exact float scores of the
        ``rescore * k`` best allowed candidates (the coarse search goes deeper under a mask)."""
        n = len(self)
        depth = min(count, k * self.config.rescore)
        coarse_depth = n if allowed is None and depth >= n else min(n, math.ceil(depth * n / count))
        coarse = np.packbits(queries > 0, axis=1) if self.config.kind == "binary" else queries
        _, candidates = self._index.search(coarse, coarse_depth)
        scores_out = np.full((len(queries), k), -np.inf, np.float32)
        rows_out = np.full((len(queries), k), -1, np.int64)
        for i, (query, found) in enumerate(zip(queries, candidates, strict=True)):
            found = found[found >= 0]
            if allowed is not None:
                found = found[allowed[found]]
            found = found[:depth]
            if not len(found):
                continue
            s, at = _exact_top_k(self.reconstruct(found), query[None, :], min(k, len(found)))
            scores_out[i, : s.shape[1]], rows_out[i, : at.shape[1]] = s[0], found[at[0]]
        return scores_out, rows_out


#: How far below the k-th BLAS score a row is still a candidate for exact rescoring, relative
#: to that score: a float32 product's rounding is far smaller (about 1e-7 for unit vectors).
_TIE_SLACK = 1e-5


def _exact_top_k(
    vectors: Vectors, queries: Vectors, k: int, allowed: Mask | None = None
) -> tuple[Vectors, Rows]:
    """The ``k`` best rows of ``vectors`` for each query, best first, ties in row order, with
    the scores FAISS's flat search gives.

    ``vectors @ queries.T`` (one BLAS product: the vectors read once for all the queries)
    finds the candidates: the rows within a small slack of each query's k-th score. Their
    scores then come from FAISS's own inner-product kernel (``fvec_inner_products_by_idx``,
    what ``IndexFlatIP`` scores with): a BLAS kernel rounds a row by where it sits in the
    matrix, so two copies of one vector in two segments scored an ulp apart, and an updated
    index ordered tied documents otherwise than a fresh build, or than FAISS's search of
    another segment. FAISS's scores do not depend on the position (checked in the tests).
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    scores = np.matmul(vectors, queries.T).T  # (queries, rows): the fast BLAS form
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]  # k <= rows
    floor = kth - _TIE_SLACK * (np.abs(kth) + 1e-3)
    found = [np.flatnonzero(row >= at) for row, at in zip(scores, floor, strict=True)]
    width = max(len(f) for f in found)  # each has at least k
    labels = np.empty((len(queries), width), np.int64)
    for i, rows in enumerate(found):
        labels[i, : len(rows)], labels[i, len(rows) :] = rows, rows[0]  # padding, dropped below
    exact = np.empty((len(queries), width), np.float32)
    faiss.fvec_inner_products_by_idx(
        faiss.swig_ptr(exact),
        faiss.swig_ptr(queries),
        faiss.swig_ptr(vectors),
        faiss.swig_ptr(labels),
        vectors.shape[1],
        len(queries),
        width,
    )
    for i, rows in enumerate(found):
        exact[i, len(rows) :] = -np.inf
    order = np.lexsort((labels, -exact))[:, :k]
    return np.take_along_axis(exact, order, axis=1), np.take_along_axis(labels, order, axis=1)
