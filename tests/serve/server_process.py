"""Run as a subprocess by the serving tests: serve an index on 127.0.0.1:PORT.

``--hashing`` serves with the test suite's hashing encoder instead of the recorded model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from densa.serve import ServeConfig
from densa.serve.app import create_app
from tests.helpers import HashingEncoder

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("index", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--hashing", action="store_true")
    args = parser.parse_args()
    config = ServeConfig(index=args.index, port=args.port)
    app = create_app(config, encoder=HashingEncoder() if args.hashing else None)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
