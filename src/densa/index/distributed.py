"""Encoding on a Dask cluster (``pip install 'densa[dask]'``).

The client reads the corpus, fills the document store and builds the index; only the
expensive part, encoding batches of passages, runs on the workers. Each worker loads the
encoder once (from the same :class:`~densa.encode.EncoderConfig`) and keeps it for later
batches. Batches come back in order and go through the same shard cache as a local build,
so a distributed build is resumable and equals a single-process one.

``local:N`` starts a ``LocalCluster`` of N single-threaded worker processes bound to
127.0.0.1; any other address is a running scheduler (``tcp://host:8786``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import numpy as np
import numpy.typing as npt

from densa._optional import require
from densa.encode.config import EncoderConfig
from densa.errors import DensaError
from densa.index.encoding import Pending, encode_batch

__all__ = ["DaskRunner", "dask_runner"]

_CACHE_ATTRIBUTE = "_densa_encoders"


def _encode_on_worker(
    config: dict[str, Any], passages: list[str], documents: list[str]
) -> tuple[Any, int, str]:
    """Runs on a worker: encode one batch with the worker's cached encoder."""
    from distributed import get_worker

    from densa.encode.encoder import Encoder, make_encoder

    worker = get_worker()
    cache: dict[str, Encoder] = getattr(worker, _CACHE_ATTRIBUTE, {})
    key = json.dumps(config, sort_keys=True)
    if key not in cache:
        cache[key] = make_encoder(EncoderConfig(**config))
        setattr(worker, _CACHE_ATTRIBUTE, cache)
    encoder = cache[key]
    vectors, truncated = encode_batch(encoder, passages, documents)
    return vectors, truncated, encoder.spec.fingerprint


class _Future:
    def __init__(self, future: Any, fingerprint: str) -> None:
        self._future = future
        self._fingerprint = fingerprint

    def result(self) -> tuple[npt.NDArray[np.float32], int]:
        vectors, truncated, fingerprint = self._future.result()
        if fingerprint != self._fingerprint:
            raise DensaError(
                f"a Dask worker encoded with another model (fingerprint {fingerprint}, "
                f"expected {self._fingerprint}); every worker must see the same model folder"
            )
        return np.asarray(vectors, dtype=np.float32), int(truncated)


class DaskRunner:
    """A :class:`~densa.index.encoding.BatchRunner` that sends batches to Dask workers."""

    def __init__(self, client: Any, config: EncoderConfig, fingerprint: str) -> None:
        self.client = client
        self._config = asdict(config)
        self._fingerprint = fingerprint
        workers = len(client.scheduler_info().get("workers", {})) or 1
        self.window = 2 * workers  # keep every worker busy while the client stores results

    def submit(self, passages: list[str], documents: list[str]) -> Pending:
        future = self.client.submit(_encode_on_worker, self._config, passages, documents, pure=False)
        return _Future(future, self._fingerprint)


@contextmanager
def dask_runner(address: str, config: EncoderConfig, fingerprint: str) -> Iterator[DaskRunner]:
    """A runner on the cluster at ``address`` (``local:N`` for a local one on 127.0.0.1)."""
    distributed = require("distributed", "dask")
    if address.startswith("local:"):
        try:
            workers = int(address.split(":", 1)[1])
        except ValueError:
            raise DensaError(f"--dask {address!r}: expected local:N with N workers") from None
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
        client = distributed.Client(cluster)
    else:
        cluster = None
        client = distributed.Client(address)
    try:
        yield DaskRunner(client, config, fingerprint)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
