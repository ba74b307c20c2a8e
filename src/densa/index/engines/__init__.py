"""External vector engines (Qdrant, Milvus) as the backend of a dense channel's parts."""

from densa.index.engines.base import (
    ENGINES_DIR,
    EXTERNAL,
    EngineLocation,
    EnginePart,
    VectorEngine,
    close_all,
    connect,
    remove_folder,
    write_engine_part,
)

__all__ = [
    "ENGINES_DIR",
    "EXTERNAL",
    "EngineLocation",
    "EnginePart",
    "VectorEngine",
    "close_all",
    "connect",
    "remove_folder",
    "write_engine_part",
]
