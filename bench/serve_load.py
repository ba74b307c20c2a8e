"""Load on the HTTP API: 16 concurrent clients for 30 s on the SciFact index.

Two phases against a real ``densa serve`` on 127.0.0.1 (a copy of the index, so the
cached one is not changed): searches only, then searches with two writers: one through the
API (add a document, delete it, in a loop) and one through the command line in another
process (``densa add`` a document, ``densa delete`` it, in a loop), as a user running the CLI
beside the server would. After every acknowledged write the server is asked for the document
until it answers as the write says (found after an add, gone after a delete): the delay is
reported. Reports throughput, latency p50/p99, errors and those delays.

Run::

    .venv/bin/python bench/serve_load.py --data ../shared/data [--clients 16] [--seconds 30]

Writes ``bench/results/serve_load.json`` and ``.md`` (``--name``: another name), with the commit
of the densa code the server ran (the one on ``PYTHONPATH``, if set).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from common import DEFAULT_DATA, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset


def code_commit(folder: Path | None = None) -> str:
    """The git commit of the densa source in ``folder`` (default: the one this process, and the
    server it starts, imports)."""
    if folder is None:
        import densa

        folder = Path(densa.__file__).parent
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--", "."], capture_output=True, text=True
    ).stdout.strip()
    return (
        done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
        if done.returncode == 0
        else "?"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(index: Path, src: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``densa serve`` on a free port, from this process's densa or the one in ``src``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src.resolve())} if src is not None else None
    command = [sys.executable, "-m", "densa", "serve", str(index), "--port", str(port)]
    proc = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    if proc.poll() is None:  # stuck: `densa serve` prints its threads' stacks on SIGUSR1
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
    proc.kill()
    raise RuntimeError(f"server did not start (exit code {proc.wait()}; stacks of a stuck one above)")


def wait_until_ready(url: str, timeout: float = 300) -> None:
    """Until the server has loaded what writes need (it loads it beside its first searches,
    which it would slow): the phases measure a server in its steady state."""
    deadline = time.monotonic() + timeout
    while not httpx.get(f"{url}/stats", timeout=10).json().get("writes_ready", True):
        if time.monotonic() > deadline:
            raise RuntimeError("the server's write model did not load")
        time.sleep(0.5)


def model_lane(url: str) -> tuple[int, int]:
    """The server's model lane so far: batches run, queries in them."""
    lane = httpx.get(f"{url}/stats", timeout=10).json()["batches"]["model"]
    return int(lane["batches"]), int(lane["queries"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(
    url: str,
    index: Path,
    queries: list[str],
    clients: int,
    seconds: float,
    mode: str,
    writes: bool,
    server_pid: int,
) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    write_latencies: list[float] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        # the standard library's keep-alive connection, not httpx: the load generator shares
        # the two cores with the server, and httpx cost 1.5 ms of CPU a request against 0.5 ms
        rng = np.random.default_rng(seed)
        host, port = url.removeprefix("http://").split(":")
        http = HTTPConnection(host, int(port), timeout=60)
        headers = {"Content-Type": "application/json"}
        try:
            while time.monotonic() < stop:
                query = queries[int(rng.integers(len(queries)))]
                body = json.dumps({"query": query, "k": 10, "mode": mode})
                start = time.perf_counter()
                try:
                    http.request("POST", "/search", body=body, headers=headers)
                    response = http.getresponse()
                    data = response.read()
                    ok = response.status == 200 and bool(json.loads(data)["results"][0]["hits"])
                    failure = "" if ok else f"{response.status}: {data[:200]!r}"
                except (OSError, HTTPException, ValueError) as exc:
                    ok, failure = False, repr(exc)
                    http.close()  # a new connection for the next request
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(failure)
        finally:
            http.close()

    visible_ms: list[float] = []

    def seen(http: httpx.Client, doc_id: str, present: bool) -> None:
        """Poll until the server answers as the acknowledged write says; record the delay."""
        start = time.perf_counter()
        while (http.get(f"/documents/{doc_id}").status_code == 200) != present:
            if time.perf_counter() - start > 30:
                with lock:
                    errors.append(f"write to {doc_id} not visible after 30 s")
                return
            time.sleep(0.01)
        with lock:
            visible_ms.append((time.perf_counter() - start) * 1000)

    def api_writer() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            i = 0
            while time.monotonic() < stop:
                doc = {
                    "id": f"load-{i}",
                    "title": "Load test",
                    "text": f"a document written under load, number {i}",
                }
                for method, path, body, present in (
                    ("POST", "/documents", {"documents": [doc]}, True),
                    ("DELETE", f"/documents/{doc['id']}", None, False),
                ):
                    start = time.perf_counter()
                    try:
                        response = http.request(method, path, json=body)
                        ok = response.status_code == 200
                    except httpx.HTTPError as exc:
                        ok, response = False, exc
                    with lock:
                        write_latencies.append((time.perf_counter() - start) * 1000)
                        if not ok:
                            errors.append(f"write: {response}")
                    if ok:
                        seen(http, doc["id"], present)
                i += 1

    def cli_writer() -> None:
        with httpx.Client(base_url=url, timeout=120) as http, tempfile.TemporaryDirectory() as tmp:
            i = 0
            while time.monotonic() < stop:
                doc_id = f"cli-{i}"
                corpus = Path(tmp) / f"{doc_id}.jsonl"
                corpus.write_text(
                    json.dumps({"_id": doc_id, "text": f"written by the CLI, number {i}"}) + "\n"
                )
                for command, present in (
                    (["add", str(index), str(corpus)], True),
                    (["delete", str(index), doc_id], False),
                ):
                    done = subprocess.run(
                        [sys.executable, "-m", "densa", *command], capture_output=True, text=True
                    )
                    with lock:
                        cli_writes.append(done.returncode)
                    if done.returncode != 0:
                        with lock:
                            errors.append(f"densa {command[0]}: {done.stderr.strip()[-200:]}")
                        break
                    seen(http, doc_id, present)
                i += 1

    cli_writes: list[int] = []
    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    if writes:
        threads += [threading.Thread(target=api_writer), threading.Thread(target=cli_writer)]
    lane = model_lane(url)
    began, server_cpu, own_cpu = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    server_cpu, own_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - own_cpu
    batches, batched = (after - before for after, before in zip(model_lane(url), lane, strict=True))
    arr = np.asarray(latencies)
    out: dict[str, Any] = {
        "mode": mode,
        "clients": clients,
        "interleaved_writes": writes,
        "requests": len(latencies),
        "throughput_rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(arr, 50)) if len(arr) else None,
        "p99_ms": float(np.percentile(arr, 99)) if len(arr) else None,
        "errors": len(errors),
        "error_samples": errors[:5],
        # CPU per search, less dependent on the day's machine speed than throughput is
        # (with writes, the server's write work is in it too)
        "server_cpu_ms_per_search": server_cpu / max(len(latencies), 1) * 1000,
        "client_cpu_ms_per_search": own_cpu / max(len(latencies), 1) * 1000,
        "mean_batch": batched / max(batches, 1),  # queries per encoder batch
    }
    if writes:
        out["writes"] = len(write_latencies)
        out["cli_writes"] = len(cli_writes)
        out["write_p50_ms"] = float(np.percentile(write_latencies, 50)) if write_latencies else None
        out["visible_max_ms"] = max(visible_ms) if visible_ms else None
        out["visible_p50_ms"] = float(np.percentile(visible_ms, 50)) if visible_ms else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument(
        "--name",
        default="serve_load",
        help="results file name; e.g. serve_load_before, run with PYTHONPATH=<older checkout>/src "
        "so that the server is that code, measured by this same script on the same day",
    )
    args = parser.parse_args()
    dataset = BeirDataset(args.data / "scifact")
    source = cached_index(dataset.root).path
    queries = [q.text for q in dataset.queries("test")]
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "scifact"
        shutil.copytree(source, index)
        proc, url = start_server(index)
        try:
            wait_until_ready(url)
            rows = [
                phase(url, index, queries, args.clients, args.seconds, args.mode, writes, proc.pid)
                for writes in (False, True)
            ]
        finally:
            proc.kill()
            proc.wait()
    table = markdown_table(
        [
            "interleaved writes",
            "mode",
            "clients",
            "requests",
            "throughput req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "server CPU ms / search",
            "mean batch",
            "API writes",
            "CLI writes",
            "write visible after, max ms",
        ],
        [
            [
                r["interleaved_writes"],
                r["mode"],
                r["clients"],
                r["requests"],
                round(r["throughput_rps"], 1),
                round(r["p50_ms"], 1),
                round(r["p99_ms"], 1),
                r["errors"],
                round(r["server_cpu_ms_per_search"], 2),
                round(r["mean_batch"], 1),
                r.get("writes", 0),
                r.get("cli_writes", 0),
                r.get("visible_max_ms") or "",
            ]
            for r in rows
        ],
    )
    payload = {"seconds": args.seconds, "server_commit": code_commit(), "results": rows}
    command = "python bench/serve_load.py " + " ".join(sys.argv[1:])
    if args.name != "serve_load":
        command = f"PYTHONPATH=<checkout of {payload['server_commit'][:7]}>/src {command}"
    write_results(args.name, payload, table, command)
    print(table)


if __name__ == "__main__":
    main()
