"""Exported-graph encoding: ONNX Runtime fp32 / int8 (``pip install 'densa[onnx]'``) and
OpenVINO fp32 / int8 (``pip install 'densa[openvino]'``).

densa exports the transformer itself with ``torch.onnx.export`` (``optimum`` would
downgrade transformers and break sentence-transformers here) and pools in NumPy with the
same rules as sentence-transformers. The export is cached in ``<model>/onnx/`` when the
model folder is writable, else in ``$XDG_CACHE_HOME/densa/onnx/<fingerprint>/``.

* ``onnx``: ONNX Runtime on the fp32 graph after ONNX Runtime's transformer optimizer has
  fused attention, GELU and layer norms;
* ``onnx-int8``: that fused graph through ``onnxruntime.quantization.quantize_dynamic`` with
  per-channel int8 weights: faster on CPUs, slightly less exact (check its agreement with
  fp32, and nDCG, before use);
* ``openvino``: the fp32 graph converted with ``openvino.convert_model`` (IR cached beside
  it) and compiled for the CPU with OpenVINO's defaults, which run in bf16 on CPUs with
  native bf16 (AVX-512 BF16 / AMX) and in fp32 elsewhere;
* ``openvino-int8``: that IR statically quantised to int8 (weights and activations) by NNCF
  post-training quantisation. Activation ranges come from calibration texts, so the first
  use of a model needs some (``densa index`` passes the first passages of the corpus it
  indexes; an opened index passes its first stored documents). The quantised IR is then
  cached beside the others with a JSON record of what calibrated it, and every later use of
  the model reuses it; delete ``*-ov-int8.*`` there to calibrate again.

Queries on ``openvino`` are *packed* (:func:`pack`): a batch's texts are laid end to end in
rows of up to :data:`PACK_TOKENS` tokens, each text with its own position ids and attending only
to itself (a block-diagonal attention mask built inside the graph), so the transformer's work
is the texts' real tokens, not a batch padded to its longest text. The packed graph is exported
beside the plain one when the model's own packed and padded outputs agree in torch (checked
once per model on probe texts and recorded in ``*-packed.json``); otherwise queries run padded.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from densa._optional import require
from densa.encode.config import CALIBRATION_TEXTS, Calibration, EncoderSpec, Pooling
from densa.encode.encoder import count_over_limit, l2_normalize
from densa.encode.tokenizer import FastTokenizer
from densa.errors import DensaError

__all__ = [
    "OnnxEncoder",
    "Runtime",
    "cached_graph",
    "export_onnx",
    "export_openvino",
    "export_packed",
    "optimize_for_onnxruntime",
    "pack",
    "pool",
    "quantize_openvino",
]

Vectors = npt.NDArray[np.float32]
Runtime = Literal["onnx", "onnx-int8", "openvino", "openvino-int8"]
_LOG = logging.getLogger("densa.encode")


def pool(tokens: npt.NDArray[np.float32], mask: npt.NDArray[np.int64], how: Pooling) -> Vectors:
    """Pool ``(batch, seq, dim)`` token embeddings with a ``(batch, seq)`` attention mask.

    Examples
    --------
    >>> t = np.array([[[1.0, 2.0], [3.0, -4.0], [9.0, 9.0]]], dtype=np.float32)
    >>> m = np.array([[1, 1, 0]])
    >>> pool(t, m, "mean").tolist(), pool(t, m, "max").tolist(), pool(t, m, "last-token").tolist()
    ([[2.0, -1.0]], [[3.0, 2.0]], [[3.0, -4.0]])
    """
    weights = mask[..., None].astype(np.float32)
    pooled: Vectors
    if how == "cls":
        pooled = tokens[:, 0]
    elif how == "mean":
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    elif how == "max":
        pooled = np.where(weights > 0, tokens, -np.inf).max(axis=1)
    else:
        last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
        pooled = tokens[np.arange(len(tokens)), last]
    return pooled.astype(np.float32)


def _export_folders(model_dir: Path, fingerprint: str) -> tuple[Path, Path]:
    """Where :func:`_cache_dir` may have put a model's exports: beside it, or the user cache."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return model_dir / "onnx", base / "densa" / "onnx" / fingerprint


def _cache_dir(model_dir: Path, fingerprint: str) -> Path:
    beside, cache = _export_folders(model_dir, fingerprint)
    try:
        beside.mkdir(exist_ok=True)
        probe = beside / ".write-test"
        probe.touch()
        probe.unlink()
        return beside
    except OSError:
        cache.mkdir(parents=True, exist_ok=True)
        return cache


#: Bumped when the export changes, so that older cached graphs are not reused.
_EXPORT_VERSION = 2


def export_onnx(transformer: Any, model_dir: Path, fingerprint: str) -> Path:
    """Export (once) the Hugging Face model inside a sentence-transformers ``Transformer``
    module to an fp32 ONNX graph; returns the ``.onnx`` path.

    Attention is traced in its plain ("eager") form, not as PyTorch's fused SDPA call: ONNX
    Runtime's transformer optimizer and OpenVINO both recognise that pattern and fuse it
    themselves (measured faster on both, see ``bench/encode_backends.py``).
    """
    import torch

    folder = _cache_dir(model_dir, fingerprint)
    fp32 = folder / _plain_export_name(fingerprint)
    if fp32.is_file():
        return fp32
    hf_model = transformer.auto_model.eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.full((2, 8), 1000, dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0  # trace with padding, so the masked attention path is the one recorded
    dummy = (ids, mask, torch.zeros((2, 8), dtype=torch.long))
    tmp = fp32.with_suffix(".tmp.onnx")
    attention = hf_model.config._attn_implementation
    hf_model.set_attn_implementation("eager")
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is chosen on purpose (the dynamo one needs optimum-era
            # tooling here); it warns that it is legacy and about traced shortcuts. What the export
            # computes is checked against torch instead (tests/encode/test_backends.py, and
            # backend_agreement before every bulk run).
            warnings.simplefilter("ignore")
            _export(torch, Wrapper(), dummy, tmp, names)
    finally:
        hf_model.set_attn_implementation(attention)
    tmp.replace(fp32)
    return fp32


def optimize_for_onnxruntime(fp32: Path, hf_config: Any, int8: bool) -> Path:
    """ONNX Runtime's transformer optimizer over an fp32 export (attention, GELU and layer
    norms fused into single operators), then, if asked, dynamic int8 quantisation with
    per-channel weights; each step cached beside ``fp32``. Returns the graph to run."""
    fused = fp32.with_name(f"{fp32.stem}-ort.onnx")
    if not fused.is_file():
        optimizer = require("onnxruntime.transformers.optimizer", "onnx")
        model = optimizer.optimize_model(
            str(fp32),
            model_type="bert",
            num_heads=int(getattr(hf_config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(hf_config, "hidden_size", 0) or 0),
        )
        tmp = fused.with_suffix(".tmp.onnx")
        model.save_model_to_file(str(tmp))
        tmp.replace(fused)
    if not int8:
        return fused
    quantized = fp32.with_name(f"{fp32.stem}-ort-int8.onnx")
    if not quantized.is_file():
        onnx = require("onnx", "onnx")
        quantization = require("onnxruntime.quantization", "onnx")
        tmp = quantized.with_suffix(".tmp.onnx")
        quantization.quantize_dynamic(
            str(fused),
            str(tmp),
            weight_type=quantization.QuantType.QInt8,
            per_channel=True,
            # fused operators are outside ONNX shape inference: their outputs are fp32
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        tmp.replace(quantized)
    return quantized


def export_openvino(onnx_path: Path) -> Path:
    """Convert (once) an fp32 ONNX export to OpenVINO IR beside it; returns the ``.xml`` path."""
    ov = require("openvino", "openvino")
    xml = onnx_path.with_suffix(".xml")
    if not (xml.is_file() and xml.with_suffix(".bin").is_file()):
        tmp = onnx_path.with_suffix(".tmp.xml")
        ov.save_model(ov.convert_model(str(onnx_path)), str(tmp), compress_to_fp16=False)
        tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))  # weights first, then the graph
        tmp.replace(xml)
    return xml


#: Tokens of one packed row (a longer text has a row of its own). Attention grows with the
#: square of a row's length, the feed-forward layers with its tokens: at 256 tokens the
#: attention of MiniLM-sized models is about a tenth of a packed row's work.
PACK_TOKENS = 256

#: Texts of different lengths that the packed export is checked on (against padding).
_PACK_PROBES = (
    "heart attack",
    "what is the boiling point of water at high altitude",
    "Cardiac arrest is the sudden loss of heart function, breathing and consciousness; it "
    "usually results from an electrical disturbance in the heart that disrupts its pumping.",
    "a",
)


@dataclass(frozen=True)
class Packed:
    """A batch of token sequences packed into rows (see :func:`pack`).

    ``feeds`` are the packed graph's inputs, each ``(rows, width)``: ``input_ids``,
    ``position_ids`` (0 at each text's first token) and ``segments`` (the text's index; -1
    on padding). ``tokens`` lists every text's token positions in the flattened rows, text
    after text; ``starts`` and ``lengths`` say where each text's run begins and how long it is.
    """

    feeds: dict[str, npt.NDArray[np.int64]]
    tokens: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]


def pack(token_ids: Sequence[Sequence[int]], capacity: int = PACK_TOKENS, pad_id: int = 0) -> Packed:
    """Lay token sequences end to end in rows of at most ``capacity`` tokens (first fit, in
    the given order; a longer sequence gets a row of its own); rows are padded to the longest
    with ``pad_id`` (any id: padding is in a segment of its own and never pooled).

    The rows are balanced: with ``R`` the fewest rows ``capacity`` allows, each row holds at
    most the mean fill plus the longest sequence (when that is under ``capacity``), and first
    fit then never opens more than ``R`` rows. 320 tokens of short queries at a capacity of
    256 give two rows of about 160 instead of 256 + 64 padded to 256.

    Examples
    --------
    >>> p = pack([[5, 6, 7], [8, 9], [4]], capacity=4)
    >>> p.feeds["input_ids"].tolist(), p.feeds["segments"].tolist()
    ([[5, 6, 7, 4], [8, 9, 0, 0]], [[0, 0, 0, 2], [1, 1, -1, -1]])
    >>> p.feeds["position_ids"].tolist(), p.tokens.tolist(), p.starts.tolist()
    ([[0, 1, 2, 0], [0, 1, 0, 0]], [0, 1, 2, 4, 5, 3], [0, 3, 5])
    """
    lengths = np.asarray([len(ids) for ids in token_ids], dtype=np.int64)
    if len(lengths) == 0 or lengths.min() < 1:
        raise DensaError("pack needs at least one sequence, each of at least one token")
    total, longest = int(lengths.sum()), int(lengths.max())
    fewest = -(-total // capacity)
    # a sequence that fits no open row finds each above limit - itself >= the mean fill, so
    # first fit stops at `fewest` rows
    limit = max(longest, min(capacity, -(-total // fewest) + longest))
    rows: list[list[int]] = []
    used: list[int] = []
    place = np.zeros((len(lengths), 2), dtype=np.int64)  # each text's row and first column
    for i, n in enumerate(lengths.tolist()):
        row = next((r for r, u in enumerate(used) if u + n <= limit), len(rows))
        if row == len(rows):
            rows.append([])
            used.append(0)
        place[i] = row, used[row]
        rows[row].append(i)
        used[row] += n
    width = max(used)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    positions = np.zeros_like(ids)
    segments = np.full_like(ids, -1)
    tokens = np.empty(total, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    for i, (sequence, (row, col)) in enumerate(zip(token_ids, place.tolist(), strict=True)):
        n = len(sequence)
        ids[row, col : col + n] = sequence
        positions[row, col : col + n] = np.arange(n)
        segments[row, col : col + n] = i
        tokens[starts[i] : starts[i] + n] = row * width + col + np.arange(n)
    feeds = {"input_ids": ids, "position_ids": positions, "segments": segments}
    return Packed(feeds, tokens, starts, lengths)


def pool_packed(hidden: npt.NDArray[np.float32], packed: Packed, how: Pooling) -> Vectors:
    """:func:`pool` for a packed batch: ``hidden`` is the packed graph's ``(rows, width, dim)``
    output; one vector per text, in the order the texts were packed.

    Examples
    --------
    >>> p = pack([[1, 1], [1]], capacity=3)
    >>> h = np.array([[[1.0, 2.0], [3.0, -4.0], [9.0, 9.0]]], dtype=np.float32)
    >>> pool_packed(h, p, "mean").tolist(), pool_packed(h, p, "last-token").tolist()
    ([[2.0, -1.0], [9.0, 9.0]], [[3.0, -4.0], [9.0, 9.0]])
    """
    flat = hidden.reshape(-1, hidden.shape[-1])[packed.tokens]
    pooled: Vectors
    if how == "cls":
        pooled = flat[packed.starts]
    elif how == "mean":
        sums = np.add.reduceat(flat, packed.starts, axis=0)
        pooled = (sums / packed.lengths[:, None]).astype(np.float32)
    elif how == "max":
        pooled = np.maximum.reduceat(flat, packed.starts, axis=0)
    else:
        pooled = flat[packed.starts + packed.lengths - 1]
    return pooled


def _packed_module(hf_model: Any) -> Any:
    """The Hugging Face model taking packed rows: the block-diagonal attention mask is built
    inside the graph from ``segments``, as an additive float mask (eager attention adds the
    mask to the scores, so a boolean one would mask nothing)."""
    import torch

    takes_types = "token_type_ids" in inspect.signature(hf_model.forward).parameters

    class PackedModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, input_ids: Any, position_ids: Any, segments: Any) -> Any:
            same = segments[:, :, None] == segments[:, None, :]
            mask = torch.where(same, 0.0, torch.finfo(torch.float32).min)[:, None]
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if takes_types else {}
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, **extra)
            return out.last_hidden_state

    return PackedModel()


def _probes(tokenizer: Any) -> Packed:
    """The probe texts packed (several to a row)."""
    ids = [list(x) for x in tokenizer(list(_PACK_PROBES), truncation=True, max_length=64)["input_ids"]]
    return pack(ids, capacity=max(len(x) for x in ids) * 2)


def _packing_error(torch: Any, module: Any, hf_model: Any, tokenizer: Any, packed: Packed) -> float:
    """The largest difference, over the probe texts' real tokens (``packed``), between the
    model's packed and padded outputs in torch (``inf`` if the packed call fails)."""
    batch = tokenizer(list(_PACK_PROBES), padding=True, truncation=True, max_length=64, return_tensors="pt")
    try:
        with torch.no_grad():
            rows = module(*(torch.from_numpy(packed.feeds[n]) for n in _PACKED_INPUTS)).numpy()
            padded = hf_model(**batch).last_hidden_state.numpy()
    except Exception as exc:  # a model that does not take position ids or a 4D mask
        _LOG.info("packed encoding is not possible for this model: %s", exc)
        return float("inf")
    flat = rows.reshape(-1, rows.shape[-1])[packed.tokens]
    mask = batch["attention_mask"].numpy().astype(bool)
    return float(np.abs(flat - padded[mask]).max())


_PACKED_INPUTS = ("input_ids", "position_ids", "segments")

#: The largest packed-vs-padded difference in torch's fp32 for the packed export to be used.
_PACKING_TOLERANCE = 1e-4


def export_packed(transformer: Any, model_dir: Path, fingerprint: str) -> Path | None:
    """Export (once) the packed graph of the Hugging Face model inside a sentence-transformers
    ``Transformer`` module and convert it to OpenVINO IR; returns the ``.xml`` path, or
    ``None`` when packed and padded outputs disagree for this model in torch (e.g. position ids
    that do not start at 0, as RoBERTa's); the check is recorded in ``*-packed.json``."""
    import torch

    folder = _cache_dir(model_dir, fingerprint)
    stem = f"densa-{fingerprint}-v{_EXPORT_VERSION}-packed"
    record, xml = folder / f"{stem}.json", folder / f"{stem}.xml"
    if record.is_file():
        agrees = bool(json.loads(record.read_text(encoding="utf-8")).get("agrees"))
        if not agrees:
            return None
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
    hf_model = transformer.auto_model.eval()
    attention = hf_model.config._attn_implementation
    hf_model.set_attn_implementation("eager")
    try:
        module = _packed_module(hf_model)
        probes = _probes(transformer.tokenizer)
        error = _packing_error(torch, module, hf_model, transformer.tokenizer, probes)
        if error <= _PACKING_TOLERANCE:  # traced on the probes: several texts to a row
            try:
                _export_packed(torch, module, probes, folder / f"{stem}.onnx")
            except Exception as exc:  # queries run padded; the next export tries again
                _LOG.warning("exporting the packed query graph failed (%s); queries stay padded", exc)
                return None
    finally:
        hf_model.set_attn_implementation(attention)
    record.write_text(
        json.dumps({"agrees": error <= _PACKING_TOLERANCE, "max_abs_diff": error}, indent=2) + "\n",
        encoding="utf-8",
    )
    return xml if error <= _PACKING_TOLERANCE else None


def _export_packed(torch: Any, module: Any, probes: Packed, onnx_path: Path) -> None:
    """Trace ``module`` on the packed probes to ``onnx_path``, convert it to OpenVINO IR
    beside it (``.xml``), and remove the ONNX file (only OpenVINO runs the packed graph)."""
    tmp = onnx_path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in export_onnx
        torch.onnx.export(
            module,
            tuple(torch.from_numpy(probes.feeds[n]) for n in _PACKED_INPUTS),
            str(tmp),
            input_names=list(_PACKED_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "rows", 1: "width"} for n in [*_PACKED_INPUTS, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(onnx_path)
    export_openvino(onnx_path)
    onnx_path.unlink()


def cached_packed_graph(graph: Path) -> Path | None:
    """The packed OpenVINO graph exported beside the plain ``openvino`` graph ``graph``, if any."""
    packed = graph.with_name(f"{graph.stem}-packed.xml")
    return packed if packed.is_file() and packed.with_suffix(".bin").is_file() else None


def quantize_openvino(
    xml: Path,
    tokenizer: Any,
    max_length: int,
    calibration: Calibration | None,
    *,
    prefix: str = "",
) -> Path:
    """Quantise (once) an fp32 OpenVINO IR to static int8 with NNCF, its activation ranges
    measured on up to :data:`CALIBRATION_TEXTS` calibration texts (each after ``prefix``, the
    passage instruction); returns the int8 ``.xml``.

    The result is cached beside ``xml`` with a ``.json`` record (how many texts, their
    SHA-256, the library versions); a cached one is reused whatever ``calibration`` is.
    """
    out = xml.with_name(f"{xml.stem}-ov-int8.xml")
    record = out.with_suffix(".json")
    if out.is_file() and out.with_suffix(".bin").is_file() and record.is_file():
        return out
    if calibration is None:
        raise DensaError(
            f"the openvino-int8 backend has to be calibrated once for this model ({xml.parent}): "
            "run `densa index CORPUS -o INDEX --backend openvino-int8`, or pass calibration texts "
            "(make_encoder(config, calibration=texts))"
        )
    given = calibration() if callable(calibration) else calibration
    texts = [prefix + t for t in given if t.strip()][:CALIBRATION_TEXTS]
    if not texts:
        raise DensaError("openvino-int8 calibration needs at least one non-empty text")
    ov = require("openvino", "openvino")
    nncf = require("nncf", "openvino")
    _LOG.info(
        "calibrating openvino-int8 on %d passages, once for this model (a minute or two on 2 CPU cores)...",
        len(texts),
    )
    start = time.perf_counter()
    items = []
    for text in texts:  # one text per item: no padding in the measured ranges
        batch = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        items.append(_feeds(batch))
    quantized = nncf.quantize(
        ov.Core().read_model(str(xml)),
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    tmp = out.with_suffix(".tmp.xml")
    ov.save_model(quantized, str(tmp), compress_to_fp16=False)
    info = {
        "calibration_texts": len(texts),
        "calibration_sha256": digest,
        "max_length": max_length,
        "nncf": nncf.__version__,
        "openvino": ov.__version__,
    }
    record.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tmp.with_suffix(".bin").replace(out.with_suffix(".bin"))  # weights first, then the graph
    tmp.replace(out)
    _LOG.info("calibrated in %.0f s; the int8 graph is cached in %s", time.perf_counter() - start, out.parent)
    return out


def _feeds(batch: Any) -> dict[str, npt.NDArray[np.int64]]:
    """The graph's three int64 inputs from a tokenizer's NumPy batch."""
    ids = batch["input_ids"]
    return {
        "input_ids": ids.astype(np.int64),
        "attention_mask": batch["attention_mask"].astype(np.int64),
        "token_type_ids": batch.get("token_type_ids", np.zeros_like(ids)).astype(np.int64),
    }


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _OnnxRuntime:
    """An ONNX Runtime session; ``callers`` threads may run it at once (sessions are
    thread-safe), each with an equal share of the cores."""

    def __init__(self, path: Path, callers: int = 1) -> None:
        ort = require("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if callers > 1:
            options.intra_op_num_threads = max(1, _cores() // callers)
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        (tokens,) = self._session.run(["last_hidden_state"], feeds)
        return np.asarray(tokens, dtype=np.float32)


class _OpenVino:
    """An OpenVINO compiled model. One caller: the latency hint (every core on one request).
    Several callers (a server's worker threads): the throughput hint with one stream per
    caller up to the cores, and an infer request per caller, so that requests run side by
    side instead of queueing for one stream (more queries per CPU-second on small batches)."""

    def __init__(self, path: Path, callers: int = 1) -> None:
        ov = require("openvino", "openvino")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if callers > 1:
            cores = _cores()
            config = {
                "PERFORMANCE_HINT": "THROUGHPUT",
                "NUM_STREAMS": min(callers, cores),
                "INFERENCE_NUM_THREADS": cores,
            }
        compiled = ov.Core().compile_model(str(path), "CPU", config)
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(callers):
            self._requests.put(compiled.create_infer_request())
        self._output = compiled.output(0)

    def __call__(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        request = self._requests.get()  # one per caller: waits only if more callers than said
        try:
            return np.asarray(request.infer(feeds)[self._output], dtype=np.float32)
        finally:
            self._requests.put(request)


def _export(torch: Any, module: Any, dummy: tuple[Any, ...], path: Path, names: list[str]) -> None:
    torch.onnx.export(
        module,
        dummy,
        str(path),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )


def _plain_export_name(fingerprint: str) -> str:
    """The plain fp32 export (:func:`export_onnx`) that every runtime's graph starts from."""
    return f"densa-{fingerprint}-v{_EXPORT_VERSION}.onnx"


def _graph_name(fingerprint: str, runtime: Runtime) -> str:
    """The cached file that ``runtime`` runs, in the export folder."""
    stem = f"densa-{fingerprint}-v{_EXPORT_VERSION}"
    return {
        "onnx": f"{stem}-ort.onnx",
        "onnx-int8": f"{stem}-ort-int8.onnx",
        "openvino": f"{stem}.xml",
        "openvino-int8": f"{stem}-ov-int8.xml",
    }[runtime]


def cached_graph(model_dir: Path, fingerprint: str, runtime: Runtime) -> Path | None:
    """The graph ``runtime`` would run for this model if it is exported (and, for
    ``openvino-int8``, calibrated) already; nothing is created."""
    for folder in _export_folders(model_dir, fingerprint):
        graph = folder / _graph_name(fingerprint, runtime)
        weights_ready = graph.suffix != ".xml" or graph.with_suffix(".bin").is_file()
        if graph.is_file() and weights_ready:
            return graph
    return None


def cached_fp32_graph(model_dir: Path, fingerprint: str) -> Path | None:
    """An fp32 graph ONNX Runtime can run for this model, if one is exported already: the one
    optimised for it, else the plain export that every other backend's export starts from
    (an OpenVINO export keeps it beside its own); nothing is created."""
    optimised = cached_graph(model_dir, fingerprint, "onnx")
    if optimised is not None:
        return optimised
    plain = (folder / _plain_export_name(fingerprint) for folder in _export_folders(model_dir, fingerprint))
    return next((graph for graph in plain if graph.is_file()), None)


class OnnxEncoder:
    """Encodes with an exported graph what a :class:`SentenceTransformerEncoder` encodes with
    torch, on ONNX Runtime (``onnx``, ``onnx-int8``) or OpenVINO (``openvino``,
    ``openvino-int8``).

    :meth:`from_torch` exports the graph from a loaded torch encoder (only single-tower
    transformer + pooling models); :meth:`from_cache` opens an exported one with nothing but
    the tokenizer, without importing torch. ``calibration`` (passages, or a function returning
    them) is used by ``openvino-int8`` the first time a model is quantised. ``packed``: the
    model's packed graph (:func:`export_packed`), which then encodes the queries.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        tokenizer: Any,
        path: Path,
        runtime: Runtime,
        *,
        normalize: bool,
        batch_size: int,
        callers: int = 1,
        packed: Path | None = None,
    ) -> None:
        if runtime not in get_args(Runtime):
            raise DensaError(f"unknown runtime {runtime!r}")
        self._spec = spec
        self._tokenizer = tokenizer
        self.path = path
        self.runtime = runtime
        self._normalize = normalize
        self._batch_size = batch_size
        if callers < 1:
            raise DensaError("callers must be at least 1")
        self.callers = callers
        self._local = threading.local()  # each calling thread's own tokenizer (callers > 1)
        self._run: _OnnxRuntime | _OpenVino = (
            _OnnxRuntime(path, callers) if runtime.startswith("onnx") else _OpenVino(path, callers)
        )
        self.packed = packed
        self._run_packed = _OpenVino(packed, callers) if packed is not None else None

    def parallel(self, callers: int) -> OnnxEncoder:
        """The same graph for ``callers`` threads calling at once (a server's workers): every
        method may then be called from several threads; each thread tokenizes with its own
        copy of the tokenizer (Hugging Face tokenizers refuse concurrent use) and runs on
        its own OpenVINO stream or ONNX Runtime share of the cores."""
        return self._copy(callers, self.packed)

    def padded(self) -> OnnxEncoder:
        """The same graph with queries padded, as documents are (what runs for a model whose
        packed graph is not exported): to compare the two."""
        return self._copy(self.callers, None)

    def _copy(self, callers: int, packed: Path | None) -> OnnxEncoder:
        return OnnxEncoder(
            self._spec,
            copy.deepcopy(self._tokenizer),  # not shared with this encoder's callers
            self.path,
            self.runtime,
            normalize=self._normalize,
            batch_size=self._batch_size,
            callers=callers,
            packed=packed,
        )

    @property
    def thread_safe(self) -> bool:
        """Whether several threads may call this encoder at once (see :meth:`parallel`)."""
        return self.callers > 1

    def _thread_tokenizer(self) -> Any:
        if self.callers == 1:
            return self._tokenizer
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:  # the original is only ever copied, never called, from here on
            tokenizer = self._local.tokenizer = copy.deepcopy(self._tokenizer)
        return tokenizer

    @classmethod
    def from_torch(
        cls,
        torch_encoder: Any,
        model_dir: Path,
        *,
        runtime: Runtime = "onnx",
        calibration: Calibration | None = None,
    ) -> OnnxEncoder:
        """Export (once, cached) the graph of a loaded :class:`SentenceTransformerEncoder`."""
        if runtime not in get_args(Runtime):
            raise DensaError(f"unknown runtime {runtime!r}")
        modules = list(torch_encoder._doc_model)
        kinds = [type(m).__name__ for m in modules]
        single_tower = torch_encoder._query_model is torch_encoder._doc_model
        if (
            not single_tower
            or kinds[0] != "Transformer"
            or not set(kinds) <= {"Transformer", "Pooling", "Normalize"}
        ):
            raise DensaError(
                f"the onnx backends support single-tower transformer + pooling models, not {kinds}"
            )
        spec: EncoderSpec = torch_encoder.spec
        tokenizer = torch_encoder.tokenizer
        path = export_onnx(modules[0], model_dir, spec.fingerprint)
        packed = export_packed(modules[0], model_dir, spec.fingerprint) if runtime == "openvino" else None
        if runtime.startswith("onnx"):
            path = optimize_for_onnxruntime(path, modules[0].auto_model.config, runtime == "onnx-int8")
        else:
            path = export_openvino(path)
            if runtime == "openvino-int8":
                path = quantize_openvino(
                    path, tokenizer, spec.max_length, calibration, prefix=spec.passage_prefix
                )
        normalize = spec.normalize or "Normalize" in kinds
        return cls(
            spec,
            tokenizer,
            path,
            runtime,
            normalize=normalize,
            batch_size=torch_encoder.config.batch_size,
            packed=packed,
        )

    @classmethod
    def from_cache(
        cls,
        spec: EncoderSpec,
        model_dir: Path,
        runtime: Runtime,
        batch_size: int = 32,
        graph: Path | None = None,
    ) -> OnnxEncoder | None:
        """The encoder of an already exported graph for ``spec`` (its fingerprint names it;
        ``graph``: this one instead), opened with the model folder's tokenizer alone (no
        torch); ``None`` if not exported yet or if the model is not a single-tower transformer
        + pooling pipeline."""
        graph = graph or cached_graph(model_dir, spec.fingerprint, runtime)
        modules_file = model_dir / "modules.json"
        if graph is None or spec.query_model is not None or not modules_file.is_file():
            return None
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if (
            not kinds
            or kinds[0] != "Transformer"
            or not set(kinds) <= {"Transformer", "Pooling", "Normalize"}
        ):
            return None
        folder = model_dir / modules[0].get("path", "")
        tokenizer: Any = FastTokenizer.load(folder)  # no torch; transformers' classes import it
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        normalize = spec.normalize or "Normalize" in kinds
        packed = cached_packed_graph(graph) if runtime == "openvino" else None
        return cls(spec, tokenizer, graph, runtime, normalize=normalize, batch_size=batch_size, packed=packed)

    @property
    def spec(self) -> EncoderSpec:
        return self._spec

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (the calling thread's own copy on a :meth:`parallel` encoder)."""
        return self._thread_tokenizer()

    def count_truncated(self, texts: Sequence[str]) -> int:
        return count_over_limit(self._thread_tokenizer(), self._spec, texts)

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode([self._spec.query_prefix + t for t in texts], packed=self._run_packed is not None)

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        return self._encode([self._spec.passage_prefix + t for t in texts])

    def _encode(self, texts: list[str], packed: bool = False) -> Vectors:
        """Encode in batches, longest first as sentence-transformers does (batches of similar
        length pad less; packed, first fit fills rows better); ``packed``: on the packed graph."""
        out = np.zeros((len(texts), self._spec.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        tokenizer = self._thread_tokenizer()
        for start in range(0, len(texts), self._batch_size):
            rows = order[start : start + self._batch_size]
            batch = [texts[i] for i in rows]
            pooled = self._pooled_packed(tokenizer, batch) if packed else self._pooled(tokenizer, batch)
            pooled = pooled[:, : self._spec.dim]
            out[rows] = l2_normalize(pooled) if self._normalize else pooled
        return out

    def _pooled(self, tokenizer: Any, texts: list[str]) -> Vectors:
        """One batch padded to its longest text, pooled."""
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=self._spec.max_length, return_tensors="np"
        )
        feeds = _feeds(batch)
        return pool(self._run(feeds), feeds["attention_mask"], self._spec.pooling)

    def _pooled_packed(self, tokenizer: Any, texts: list[str]) -> Vectors:
        """One batch packed into rows on the packed graph, pooled per text."""
        assert self._run_packed is not None
        ids = tokenizer(texts, truncation=True, max_length=self._spec.max_length)["input_ids"]
        if not all(ids):  # an empty sequence has no segment to pool
            return self._pooled(tokenizer, texts)
        packed = pack(ids, max(PACK_TOKENS, self._spec.max_length))
        return pool_packed(self._run_packed(packed.feeds), packed, self._spec.pooling)
