"""Chunk stage: long documents into passages that fit the encoder."""

from densa.chunk.chunker import ChunkConfig, Chunker, Span

__all__ = ["ChunkConfig", "Chunker", "Span"]
