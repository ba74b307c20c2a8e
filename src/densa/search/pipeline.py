"""A search pipeline saved as a file: which channels, how they fuse, which reranker, how much.

``densa search|eval --pipeline FILE`` runs the pipeline a benchmark chose (``bench/best_scifact.py``
writes one) or one a user wrote by hand. The file is JSON, never pickle::

    {
      "densa_pipeline": 1,
      "search": {"mode": "dense+bm25", "depth": 100,
                 "fusion": {"method": "weighted", "weights": {"dense": 0.6, "bm25": 0.4},
                            "normalization": "zscore"},
                 "rerank_depth": 100, "rerank_weight": 0.3},
      "reranker": "reranker",
      "backend": "auto",
      "about": {"chosen_on": "81 dev questions of SciFact train"}
    }

``search`` holds :class:`~densa.search.SearchConfig`'s fields (all optional: missing ones keep
their defaults); ``reranker`` is a cross-encoder or ColBERT folder, relative to the file's own
folder unless absolute; ``backend`` the query backend; ``about`` is free-form provenance
(what the choice was made on, what it scored) that densa keeps but does not read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from densa.errors import ConfigError, InputError
from densa.fuse.fusion import FusionConfig
from densa.search.config import SearchConfig

__all__ = ["FORMAT", "Pipeline", "read_pipeline", "write_pipeline"]

#: The file format's version (the ``densa_pipeline`` key).
FORMAT = 1
_TOP_KEYS = {"densa_pipeline", "search", "reranker", "backend", "about"}
_SEARCH_KEYS = {f.name for f in fields(SearchConfig)}
_FUSION_KEYS = {f.name for f in fields(FusionConfig)}


@dataclass(frozen=True)
class Pipeline:
    """A whole search: its :class:`SearchConfig`, reranker folder and query backend.

    Parameters
    ----------
    search
        Channels, fusion, depths, rerank depth and weight.
    reranker
        Cross-encoder or ColBERT folder (``None``: no reranking).
    backend
        Query encoding backend (``None``: the command's default).
    about
        Provenance kept with the file (what the choices were made on, measured figures).
    """

    search: SearchConfig = field(default_factory=SearchConfig)
    reranker: Path | None = None
    backend: str | None = None
    about: Mapping[str, Any] = field(default_factory=dict)


def _fusion_dict(config: FusionConfig) -> dict[str, Any]:
    out = asdict(config)
    weights = config.weights
    out["weights"] = dict(weights) if isinstance(weights, Mapping) else list(weights) if weights else None
    return out


def write_pipeline(pipeline: Pipeline, path: str | Path) -> Path:
    """Write ``pipeline`` as JSON to ``path`` (atomically); the reranker folder is stored
    relative to the file's folder when it lies inside it or beside it (``../models/x``), so the
    file moves with its models; else absolute."""
    path = Path(path)
    search = {f.name: getattr(pipeline.search, f.name) for f in fields(SearchConfig)}
    search["fusion"] = _fusion_dict(pipeline.search.fusion)
    reranker: str | None = None
    if pipeline.reranker is not None:
        target, folder = Path(pipeline.reranker).resolve(), path.parent.resolve()
        if target.is_relative_to(folder):
            reranker = target.relative_to(folder).as_posix()
        elif target.is_relative_to(folder.parent) and folder.parent != folder:
            reranker = "../" + target.relative_to(folder.parent).as_posix()
        else:
            reranker = str(target)
    data = {
        "densa_pipeline": FORMAT,
        "search": search,
        "reranker": reranker,
        "backend": pipeline.backend,
        "about": dict(pipeline.about),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _unknown(source: str, where: str, given: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(given) - known)
    if extra:
        raise InputError(
            source, None, f"unknown key(s) in {where}: {', '.join(extra)} (known: {', '.join(sorted(known))})"
        )


def _object(source: str, where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(source, None, f"{where} must be a JSON object, got {type(value).__name__}")
    return value


#: JSON types of the options (weights are checked by FusionConfig).
_TYPES: dict[str, tuple[type, ...]] = {
    "mode": (str,),
    "aggregate": (str,),
    "method": (str,),
    "normalization": (str, type(None)),
    "depth": (int,),
    "top_passages": (int,),
    "rerank_depth": (int,),
    "rerank_weight": (int, float),
    "rrf_k": (int, float),
    "weights": (dict, tuple, type(None)),
}


def _check_type(source: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, _TYPES[name]):
        wanted = " or ".join("null" if t is type(None) else t.__name__ for t in _TYPES[name])
        raise InputError(source, None, f"search option {name!r} must be {wanted}, got {value!r}")
    if name == "weights" and value is not None:
        given: Any = value
        items: Iterable[Any] = given.values() if isinstance(given, dict) else given
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in items):
            raise InputError(source, None, f"fusion weights must be numbers, got {value!r}")


def read_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline file; every error names the file (and the line, for bad JSON)."""
    path = Path(path)
    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(source, None, "no such pipeline file") from None
    except UnicodeDecodeError:
        raise InputError(source, None, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(source, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    top = _object(source, "the file", data)
    _unknown(source, "the file", top, _TOP_KEYS)
    version = top.get("densa_pipeline")
    if version != FORMAT:
        raise InputError(
            source, None, f"densa_pipeline must be {FORMAT} (this densa's format), got {version!r}"
        )
    search = dict(_object(source, "search", top.get("search", {})))
    _unknown(source, "search", search, _SEARCH_KEYS)
    fusion = dict(_object(source, "search.fusion", search.pop("fusion", {})))
    _unknown(source, "search.fusion", fusion, _FUSION_KEYS)
    if isinstance(fusion.get("weights"), list):
        fusion["weights"] = tuple(fusion["weights"])
    for name, value in (*search.items(), *fusion.items()):
        _check_type(source, name, value)
    try:
        config = SearchConfig(fusion=FusionConfig(**fusion), **search)
    except (ConfigError, TypeError) as exc:
        raise InputError(source, None, f"bad search options: {exc}") from None
    reranker = top.get("reranker")
    if reranker is not None and not isinstance(reranker, str):
        raise InputError(source, None, f"reranker must be a folder path or null, got {reranker!r}")
    backend = top.get("backend")
    if backend is not None and not isinstance(backend, str):
        raise InputError(source, None, f"backend must be a string or null, got {backend!r}")
    folder = None
    if reranker is not None:
        folder = Path(reranker) if Path(reranker).is_absolute() else path.parent / reranker
        if not folder.is_dir():
            raise InputError(source, None, f"reranker folder {reranker!r} does not exist")
    about = _object(source, "about", top.get("about", {}))
    return Pipeline(config, folder, backend, dict(about))
