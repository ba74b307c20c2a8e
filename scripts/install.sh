#!/usr/bin/env bash
# Create .venv and install densa with every extra. torch goes first, pinned by constraints.txt,
# so that nothing can replace the CPU wheel with a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[all,dev]"
echo "densa installed in .venv ($(.venv/bin/densa --help >/dev/null && echo ok))"
