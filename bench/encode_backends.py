"""Bulk encoding speed per backend on SciFact, against sentence-transformers fp32 in the same run.

For each backend: passages per second encoding the whole SciFact corpus (5,183 abstracts,
256-token limit, batch 32, one process on this machine's cores), mean / min cosine with the
sentence-transformers fp32 vectors, and SciFact test nDCG@10 of a flat index built from
that backend's vectors, its queries encoded by the same backend. Export / conversion time
(once per model, cached beside it) is reported apart from encoding time.

``openvino-int8`` is calibrated afresh on the first 300 SciFact passages, as ``densa index``
would calibrate it (the bench deletes a cached int8 IR first), so its setup time includes the
NNCF quantisation.

Run::

    .venv/bin/python bench/encode_backends.py --data ../shared/data

Writes ``bench/results/encode_backends.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_DATA,
    RESULTS,
    WORK,
    PrecomputedEncoder,
    markdown_table,
    read_dataset_corpus,
    write_results,
)
from densa.corpus import BeirDataset
from densa.encode import CALIBRATION_TEXTS, DEFAULT_MODEL, EncoderConfig, make_encoder
from densa.encode.model_files import resolve_model_path
from densa.evaluate import evaluate_dataset
from densa.index import Index
from densa.search import Searcher

BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8", "openvino", "openvino-int8")
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--limit", type=int, default=None, help="encode only the first N passages")
    args = parser.parse_args()
    command = "python bench/encode_backends.py " + " ".join(sys.argv[1:])
    scifact = BeirDataset(args.data / "scifact")
    documents = list(read_dataset_corpus(scifact.root))[: args.limit]
    texts = [d.full_text for d in documents]

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(resolve_model_path(DEFAULT_MODEL)), device="cpu", local_files_only=True)
    st.encode(texts[:64], batch_size=BATCH)  # warm-up
    start = time.perf_counter()
    reference = st.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
    st_rate = len(texts) / (time.perf_counter() - start)
    print(f"sentence-transformers fp32: {st_rate:.1f} passages/s", flush=True)
    rows: dict[str, Any] = {"sentence-transformers fp32": {"passages_per_s": st_rate, "speedup": 1.0}}

    for backend in args.backends.split(","):
        config = EncoderConfig(backend=backend, batch_size=BATCH, device="cpu")  # type: ignore[arg-type]
        if backend == "openvino-int8":
            for cached in (resolve_model_path(DEFAULT_MODEL) / "onnx").glob("*-ov-int8.*"):
                cached.unlink()
        start = time.perf_counter()
        encoder = make_encoder(config, calibration=texts[:CALIBRATION_TEXTS])
        encoder.encode_documents(texts[:64])  # warm-up (and the export, the first time)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        vectors = encoder.encode_documents(texts)
        rate = len(texts) / (time.perf_counter() - start)
        cosines = (vectors * reference).sum(axis=1)
        feeder = PrecomputedEncoder(encoder, vectors, {t: i for i, t in enumerate(texts)}.__getitem__)
        index = Index.build(
            documents, WORK / f"backend-{backend}", encoder=feeder, overwrite=True, resume=False
        )
        assert feeder.served == len(texts)
        ndcg = None
        if args.limit is None:
            result, _ = evaluate_dataset(Searcher(index), scifact, "test", ["ndcg@10"])
            ndcg = result.metrics["ndcg@10"]
        rows[backend] = {
            "passages_per_s": rate,
            "speedup": rate / st_rate,
            "setup_s": setup,
            "cosine_mean": float(cosines.mean()),
            "cosine_min": float(cosines.min()),
            "ndcg@10": ndcg,
        }
        print(backend, rows[backend], flush=True)
        table = markdown_table(
            ["encoder", "passages/s", "× ST fp32", "setup s", "cosine mean", "cosine min", "nDCG@10"],
            [
                [
                    name,
                    r["passages_per_s"],
                    r["speedup"],
                    r.get("setup_s", ""),
                    r.get("cosine_mean", 1.0),
                    r.get("cosine_min", 1.0),
                    r.get("ndcg@10", ""),
                ]
                for name, r in rows.items()
            ],
        )
        write_results(
            "encode_backends", {"passages": len(texts), "batch_size": BATCH, "rows": rows}, table, command
        )
    print((RESULTS / "encode_backends.md").read_text())


if __name__ == "__main__":
    main()
