"""Two servers' search load, alternated: this checkout's densa against another checkout's.

On these shared CPUs one run can differ from the next by 30% with the same code, so a single
before/after pair says little. This runs ``bench/serve_load.py``'s search-only phase (16
clients, hybrid, SciFact) on each server in turn, ``--rounds`` times in A B B A order, on one
copy of the index, and reports every run and each server's median.

Run::

    git worktree add /tmp/old <commit>
    .venv/bin/python bench/serve_ab.py --data ../shared/data --against /tmp/old/src [--rounds 3]

Writes ``bench/results/serve_ab.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, cached_index, markdown_table, write_results
from densa.corpus import BeirDataset
from serve_load import code_commit, phase, start_server, wait_until_ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--against", type=Path, required=True, help="the other checkout's src folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    dataset = BeirDataset(args.data / "scifact")
    queries = [q.text for q in dataset.queries("test")]
    servers: dict[str, Path | None] = {
        f"this ({code_commit()[:7]})": None,
        f"against ({code_commit(args.against / 'densa')[:7]})": args.against,
    }
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "scifact"
        shutil.copytree(cached_index(dataset.root).path, index)
        for round_ in range(args.rounds):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for label in order:
                proc, url = start_server(index, servers[label])
                try:
                    wait_until_ready(url)
                    result = phase(url, index, queries, args.clients, args.seconds, "hybrid", False, proc.pid)
                finally:
                    proc.kill()
                    proc.wait()
                runs.append({"round": round_, "server": label, **result})
                print(label, round(result["throughput_rps"], 1), round(result["p99_ms"], 1), flush=True)
    keys = ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_ms_per_search")
    medians = {
        label: {key: statistics.median(r[key] for r in runs if r["server"] == label) for key in keys}
        for label in servers
    }
    headers = ["round", "server", "throughput req/s", "p50 ms", "p99 ms", "errors", "server CPU ms / search"]
    rows = [
        [r["round"], r["server"], *(round(r[k], 1) for k in keys[:3]), r["errors"], round(r[keys[3]], 2)]
        for r in runs
    ]
    rows += [
        ["median", label, *(round(m[k], 1) for k in keys[:3]), "", round(m[keys[3]], 2)]
        for label, m in medians.items()
    ]
    table = markdown_table(headers, rows)
    shown = [a if a != str(args.against) else "<checkout>/src" for a in sys.argv[1:]]
    command = "python bench/serve_ab.py " + " ".join(shown)
    write_results("serve_ab", {"seconds": args.seconds, "runs": runs, "medians": medians}, table, command)
    print(table)


if __name__ == "__main__":
    main()
