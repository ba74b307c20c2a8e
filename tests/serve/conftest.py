from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(index: Path, *, hashing: bool) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real uvicorn server on loopback, in a subprocess; yields (process, base URL)."""
    port = free_port()
    args = [sys.executable, "-m", "tests.serve.server_process", str(index), str(port)]
    proc = subprocess.Popen([*args, "--hashing"] if hashing else args, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def _close_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every IndexService a test opened (a TestClient used without ``with`` never runs
    the app's shutdown), so that its batch workers do not outlive the test."""
    from densa.serve.service import IndexService

    opened: list[IndexService] = []
    original = IndexService.open

    def open_and_record(self: IndexService) -> None:
        original(self)
        opened.append(self)

    monkeypatch.setattr(IndexService, "open", open_and_record)
    yield
    for service in opened:
        service.close()
