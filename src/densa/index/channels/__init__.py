"""Retrieval channels: each kind one module plus a registry entry (see :mod:`.base`)."""
