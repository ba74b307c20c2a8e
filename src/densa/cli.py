"""The ``densa`` command line: one subcommand per stage.

Each command turns its options into library configuration, calls the library, and
prints the result; no retrieval logic lives here.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from densa.errors import DensaError

if TYPE_CHECKING:
    from densa.index import Index
    from densa.search import Searcher
    from densa.search.pipeline import Pipeline

app = typer.Typer(
    name="densa",
    help="Dense passage retrieval: index a corpus, search it by meaning, evaluate it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: flags as --x / --no-x, no "<bool>" column
)


@app.callback()
def _quiet_model_loading() -> None:
    """Dense passage retrieval: index a corpus, search it by meaning, evaluate it."""
    import logging
    import warnings

    # The command line is an application: it decides what reaches the user. densa's own notes
    # (e.g. "calibrating ...") are shown; third-party deprecation warnings, weight-loading bars
    # and load reports are not.
    for module in ("transformers", "sentence_transformers", "torch", "huggingface_hub", "nncf", "openvino"):
        warnings.filterwarnings("ignore", module=module)
        logging.getLogger(module).setLevel(logging.ERROR)
    densa_log = logging.getLogger("densa")
    if not densa_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        densa_log.addHandler(handler)
        densa_log.setLevel(logging.INFO)
    # by environment, read when transformers is first imported: importing it here (1-2 s) would
    # slow every command, most of which never load a model (delete, stats, a BM25 search...)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # imported already (the CLI called in-process)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


#: Hits per query written by ``densa search --queries`` (Pyserini's default), so that a run file
#: scores Recall@100 and the like as ``densa eval`` does.
BATCH_K = 1000

IndexArg = Annotated[Path, typer.Argument(metavar="INDEX", help="Index folder.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model folder (default: bundled all-MiniLM-L6-v2).")
]
ModeOpt = Annotated[
    str,
    typer.Option(help="Channels: dense | bm25 | hybrid (all, fused) | any channel name | names joined by +."),
]
FusionOpt = Annotated[
    str | None,
    typer.Option(
        help="Fusion of several channels: auto (weights measured on the corpus, default) | rrf | weighted."
    ),
]
WeightsOpt = Annotated[
    str | None, typer.Option(help="Fusion weights by channel (dense=0.7,bm25=0.3) or in order (0.7,0.3).")
]
NormOpt = Annotated[str | None, typer.Option(help="Weighted fusion normalisation: minmax | zscore.")]
RrfKOpt = Annotated[float | None, typer.Option(help="RRF's rank constant (default 60).")]
DepthOpt = Annotated[int, typer.Option(help="Candidates taken from each channel before fusion.")]
TopPassagesOpt = Annotated[int, typer.Option(help="Passages summed by --aggregate sum.")]
RerankOpt = Annotated[
    Path | None,
    typer.Option(help="Cross-encoder (or ColBERT model: MaxSim) folder to rerank the top candidates."),
]
RerankDepthOpt = Annotated[int, typer.Option(help="Candidates the cross-encoder rescores.")]
RerankWeightOpt = Annotated[
    float,
    typer.Option(help="1: cross-encoder score only; below 1: z-score mix with the first-stage score."),
]
FilterOpt = Annotated[
    list[str] | None, typer.Option("--filter", help="Metadata filter field=value (repeatable).")
]
AggregateOpt = Annotated[str, typer.Option(help="Document score from its passages: max | sum.")]
PipelineOpt = Annotated[
    Path | None,
    typer.Option(
        help="Pipeline JSON file (channels, fusion, reranker; e.g. from bench/best_scifact.py); "
        "options given on the command line override it."
    ),
]
QueryBackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Encode queries with auto | torch | torch-bf16 | onnx | onnx-int8 | openvino | openvino-int8 "
        "(auto: OpenVINO on an index built with fp32 torch, the fastest within 0.005 nDCG@10; "
        "default: auto for search and serve, the index's own backend for eval).",
    ),
]


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _snippet(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _fusion_config(
    fusion: str | None,
    weights: str | None,
    normalization: str | None,
    rrf_k: float | None = None,
    base: Any = None,
) -> Any:
    from dataclasses import replace

    from densa.fuse import FusionConfig, parse_weights

    config = base if base is not None else FusionConfig()
    if fusion is not None:
        config = replace(config, method=fusion)  # type: ignore[arg-type]
    if weights is not None:
        config = replace(config, weights=parse_weights(weights))
    if normalization is not None:
        config = replace(config, normalization=normalization)  # type: ignore[arg-type]
    if rrf_k is not None:
        config = replace(config, rrf_k=rrf_k)
    return config


def _searcher(
    ctx: typer.Context,
    index: Index,
    rerank: Path | None,
    pipeline: Pipeline | None,
    *,
    fusion: str | None,
    weights: str | None,
    normalization: str | None,
    rrf_k: float | None,
    **config: Any,
) -> Searcher:
    """A searcher from the options ``search`` and ``eval`` share: ``config`` holds the
    :class:`SearchConfig` fields given as they are (mode, depth, aggregate, ...). With a
    ``pipeline``, its choices hold except for the options given on the command line."""
    from dataclasses import replace

    from densa.rerank import load_reranker
    from densa.search import SearchConfig, Searcher

    if pipeline is None:
        search = SearchConfig(fusion=_fusion_config(fusion, weights, normalization, rrf_k), **config)
    else:
        given = {name: value for name, value in config.items() if _given(ctx, name)}
        search = replace(
            pipeline.search,
            fusion=_fusion_config(fusion, weights, normalization, rrf_k, base=pipeline.search.fusion),
            **given,
        )
        rerank = rerank if rerank is not None else pipeline.reranker
    reranker = load_reranker(rerank, show_progress=True) if rerank is not None else None
    return Searcher(index, search, reranker=reranker)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _open_for_search(
    ctx: typer.Context, path: Path, model: str | None, backend: str | None, pipeline_file: Path | None
) -> tuple[Index, Pipeline | None]:
    """The index to search and the ``--pipeline`` file's pipeline (its backend, unless
    ``--backend`` was given)."""
    from densa.index import Index
    from densa.search.pipeline import read_pipeline

    pipeline = read_pipeline(pipeline_file) if pipeline_file is not None else None
    if pipeline is not None and pipeline.backend is not None and not _given(ctx, "backend"):
        backend = pipeline.backend
    return Index.open(path, model=model, backend=backend), pipeline  # type: ignore[arg-type]


QueryModelOpt = Annotated[str | None, typer.Option(help="Separate query-tower folder (DPR).")]
PoolingOpt = Annotated[str | None, typer.Option(help="cls | mean | max | last-token.")]
SimilarityOpt = Annotated[str | None, typer.Option(help="cosine | dot.")]
QueryPrefixOpt = Annotated[str, typer.Option(help="Instruction put before each query.")]
PassagePrefixOpt = Annotated[str, typer.Option(help="Instruction put before each passage.")]
MaxLengthOpt = Annotated[int | None, typer.Option(help="Token limit (default: the model's).")]
DimOpt = Annotated[int | None, typer.Option(help="Matryoshka: keep the first DIM dimensions.")]
K1Opt = Annotated[float, typer.Option(help="BM25 k1.")]
BOpt = Annotated[float, typer.Option(help="BM25 b.")]
BatchSizeOpt = Annotated[int, typer.Option(help="Texts per forward pass.")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu | cuda (default: cuda when present).")]
BackendOpt = Annotated[
    str, typer.Option(help="torch | torch-bf16 | onnx | onnx-int8 | openvino | openvino-int8.")
]
ChannelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--channel",
        help="A channel to build, [NAME=]KIND[:BACKEND], repeatable: dense, dense:hnsw, e5=dense:ivf-pq, "
        "bm25, colbert (with --colbert-model), splade (with --splade-model) (default: dense and bm25).",
    ),
]
ColbertModelOpt = Annotated[
    str | None,
    typer.Option(
        help="ColBERT model folder of colbert channels (densa train --family colbert, PyLate, colbert-ai)."
    ),
]
ColbertBitsOpt = Annotated[
    int, typer.Option(help="Colbert channels: bits per dimension of token residuals (1/2/4/8).")
]
SpladeModelOpt = Annotated[
    str | None, typer.Option(help="SPLADE model folder of splade channels (densa train --family splade).")
]
SpladeTermsOpt = Annotated[
    int | None, typer.Option(help="Splade channels: keep a passage's N largest weights.")
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        help="Keep dense vectors in an engine instead of FAISS files: qdrant | milvus (embedded, in the "
        "index folder; one process at a time), qdrant+http://HOST:6333 | milvus://HOST:19530 (a server)."
    ),
]


def _model_kinds(
    colbert: str | None,
    nbits: int,
    splade: str | None,
    terms: int | None,
    batch_size: int,
    device: str | None,
) -> dict[str, Any]:
    """The configs of the channel kinds named by their model options (--colbert-model, --splade-model)."""
    from densa.index.channels.colbert import ColbertChannel
    from densa.index.channels.splade import SpladeChannel

    return {
        "colbert": ColbertChannel(colbert or "", nbits=nbits, batch_size=batch_size, device=device),
        "splade": SpladeChannel(splade or "", max_terms=terms, batch_size=batch_size, device=device),
    }


def _encoder_config(**options: Any) -> Any:
    from densa.encode import DEFAULT_MODEL, EncoderConfig

    options["model"] = options["model"] or DEFAULT_MODEL
    return EncoderConfig(**options)


@app.command()
def index(
    corpus: Annotated[
        Path,
        typer.Argument(metavar="CORPUS", help="corpus.jsonl, a TSV file, or a folder of .txt/.md files."),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Index folder to create.")],
    channel: ChannelOpt = None,
    model: ModelOpt = None,
    query_model: QueryModelOpt = None,
    pooling: PoolingOpt = None,
    similarity: SimilarityOpt = None,
    query_prefix: QueryPrefixOpt = "",
    passage_prefix: PassagePrefixOpt = "",
    max_length: MaxLengthOpt = None,
    dim: DimOpt = None,
    kind: Annotated[
        str,
        typer.Option(
            help="Dense channels' FAISS kind: flat | hnsw | hnsw-sq8 | ivf-flat | ivf-sq8 | ivf-pq | binary."
        ),
    ] = "flat",
    nlist: Annotated[int | None, typer.Option(help="IVF lists (default ~4 sqrt(n)).")] = None,
    nprobe: Annotated[int, typer.Option(help="IVF lists probed per query.")] = 32,
    pq_m: Annotated[int | None, typer.Option(help="PQ bytes per vector (default dim/8).")] = None,
    ef_search: Annotated[int, typer.Option(help="HNSW search beam width.")] = 128,
    engine: EngineOpt = None,
    colbert_model: ColbertModelOpt = None,
    colbert_nbits: ColbertBitsOpt = 2,
    splade_model: SpladeModelOpt = None,
    splade_terms: SpladeTermsOpt = None,
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Split documents into passages of N tokens.")
    ] = None,
    chunk_overlap: Annotated[int, typer.Option(help="Tokens shared by consecutive passages.")] = 32,
    k1: K1Opt = 1.5,
    b: BOpt = 0.75,
    corpus_format: Annotated[str, typer.Option("--format", help="auto | jsonl | tsv | folder.")] = "auto",
    skip_bad: Annotated[bool, typer.Option(help="Skip bad records and report them.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index.")] = False,
    batch_size: BatchSizeOpt = 32,
    device: DeviceOpt = None,
    resume: Annotated[bool, typer.Option(help="Reuse shards encoded by an interrupted run.")] = True,
    dask: Annotated[
        str | None, typer.Option(help="Encode on Dask: a scheduler address, or local:N workers.")
    ] = None,
    backend: BackendOpt = "torch",
) -> None:
    """Encode CORPUS and write an index folder: the documents and every channel (default: dense + BM25).

    Encoded batches are kept in INDEX/.build/ until the build finishes: after a crash or
    kill, the same command again encodes only what is missing.
    """
    from densa.chunk import ChunkConfig
    from densa.corpus import SkipReport, count_records, read_corpus
    from densa.index import BM25Config, Index, VectorIndexConfig
    from densa.index.channels.specs import channel_configs

    encoder = _encoder_config(
        model=model,
        query_model=query_model,
        pooling=pooling,
        similarity=similarity,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        max_length=max_length,
        dim=dim,
        batch_size=batch_size,
        device=device,
        backend=backend,
    )
    vectors = VectorIndexConfig(
        kind=kind,  # type: ignore[arg-type]
        nlist=nlist,
        nprobe=nprobe,
        pq_m=pq_m,
        ef_search=ef_search,
        engine=engine,
    )
    configs = channel_configs(
        channel or ["dense", "bm25"],
        encoder,
        vectors,
        BM25Config(k1=k1, b=b),
        _model_kinds(colbert_model, colbert_nbits, splade_model, splade_terms, batch_size, device),
    )
    chunking = ChunkConfig(chunk_tokens, chunk_overlap) if chunk_tokens else None
    report = SkipReport()
    docs = read_corpus(corpus, format=corpus_format, skip_bad=skip_bad, report=report)  # type: ignore[arg-type]
    built = Index.build(
        docs,
        output,
        channels=configs,
        chunking=chunking,
        overwrite=overwrite,
        progress=True,
        resume=resume,
        dask=dask,
        expected=count_records(corpus, corpus_format),  # type: ignore[arg-type]
    )
    stats = built.build_stats
    assert stats is not None
    for note in stats.notes:
        typer.echo(note)
    typer.echo(
        f"indexed {stats.documents} documents ({stats.passages} passages) into {output} "
        f"in {stats.seconds:.1f}s ({stats.docs_per_second:.1f} docs/s); channels: {', '.join(built.channels)}"
    )
    _report_truncation(stats.truncated, built)
    _measure_fusion(built)
    if len(report):
        typer.echo(report.summary(), err=True)


def _measure_fusion(index: Index) -> None:
    """Measure the channels for label-free fusion now, so that searches need not."""
    from densa.search.calibrate import calibrate, describe

    if len(index.channels) > 1:
        typer.echo(describe(calibrate(index), list(index.channels)))


def _report_truncation(truncated: int, built: Index) -> None:
    if not truncated:
        return
    limit = built.encoder.spec.max_length
    if built.manifest.chunking is not None:
        typer.echo(
            f"note: {truncated} document(s) exceed the {limit}-token limit and were split into passages"
        )
    else:
        typer.echo(
            f"note: {truncated} document(s) are longer than the model's {limit}-token limit; only their "
            "first tokens are encoded (use --chunk-tokens to index every part)"
        )


@app.command()
def add(
    index_path: IndexArg,
    corpus: Annotated[
        Path, typer.Argument(metavar="CORPUS", help="Documents to add (same formats as `densa index`).")
    ],
    corpus_format: Annotated[str, typer.Option("--format", help="auto | jsonl | tsv | folder.")] = "auto",
    skip_bad: Annotated[bool, typer.Option(help="Skip bad records and report them.")] = False,
) -> None:
    """Add documents to INDEX as one new segment (every channel, atomically)."""
    from densa.corpus import SkipReport, count_records, read_corpus
    from densa.index import Index

    report = SkipReport()
    index = Index.open(index_path)
    docs = read_corpus(corpus, format=corpus_format, skip_bad=skip_bad, report=report, taken=index.taken)  # type: ignore[arg-type]
    expected = count_records(corpus, corpus_format)  # type: ignore[arg-type]
    updated = index.add(docs, progress=True, expected=expected)
    assert updated.build_stats is not None
    typer.echo(f"added {updated.build_stats.documents} documents; {index_path} now holds {len(updated)}")
    _report_truncation(updated.build_stats.truncated, updated)
    if len(report):
        typer.echo(report.summary(), err=True)


@app.command()
def delete(
    index_path: IndexArg,
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Document ids to delete.")],
) -> None:
    """Delete documents from INDEX by id (tombstones in their segments, atomically)."""
    from densa.index import Index

    updated = Index.open(index_path).delete(ids)
    typer.echo(f"deleted {len(ids)} documents; {index_path} now holds {len(updated)}")


@app.command("add-channel")
def add_channel(
    index_path: IndexArg,
    channel: Annotated[
        str, typer.Option("--channel", help="The channel to add, NAME=KIND[:BACKEND], e.g. e5=dense:hnsw.")
    ],
    model: ModelOpt = None,
    query_model: QueryModelOpt = None,
    pooling: PoolingOpt = None,
    similarity: SimilarityOpt = None,
    query_prefix: QueryPrefixOpt = "",
    passage_prefix: PassagePrefixOpt = "",
    max_length: MaxLengthOpt = None,
    dim: DimOpt = None,
    kind: Annotated[str, typer.Option(help="FAISS kind when BACKEND is not given.")] = "flat",
    engine: EngineOpt = None,
    colbert_model: ColbertModelOpt = None,
    colbert_nbits: ColbertBitsOpt = 2,
    splade_model: SpladeModelOpt = None,
    splade_terms: SpladeTermsOpt = None,
    k1: K1Opt = 1.5,
    b: BOpt = 0.75,
    batch_size: BatchSizeOpt = 32,
    device: DeviceOpt = None,
    backend: BackendOpt = "torch",
) -> None:
    """Add a channel to INDEX (e.g. a second model), from the stored documents; the other channels
    are not touched."""
    from densa.index import BM25Config, Index, VectorIndexConfig
    from densa.index.channels.specs import channel_configs

    encoder = _encoder_config(
        model=model,
        query_model=query_model,
        pooling=pooling,
        similarity=similarity,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        max_length=max_length,
        dim=dim,
        batch_size=batch_size,
        device=device,
        backend=backend,
    )
    ((name, config),) = channel_configs(
        [channel],
        encoder,
        VectorIndexConfig(kind=kind, engine=engine),  # type: ignore[arg-type]
        BM25Config(k1=k1, b=b),
        _model_kinds(colbert_model, colbert_nbits, splade_model, splade_terms, batch_size, device),
    ).items()
    updated = Index.open(index_path).add_channel(name, config, progress=True)
    stats = updated.build_stats
    assert stats is not None
    for note in stats.notes:
        typer.echo(note)
    typer.echo(
        f"added channel {name} ({config.kind}) over {stats.documents} documents in {stats.seconds:.1f}s; "
        f"channels: {', '.join(updated.channels)}"
    )
    _measure_fusion(updated)


@app.command()
def adapt(
    index_path: IndexArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the adapted model (resumes there).")
    ],
    queries: Annotated[int, typer.Option(help="Pseudo-queries to cut from the corpus.")] = 2000,
    pseudo: Annotated[
        str,
        typer.Option(
            help="Pseudo-queries: cloze (a cut sentence), title (of its text), keywords (3-5 words)."
        ),
    ] = "cloze",
    channel: Annotated[str, typer.Option(help="Name of the adapted channel to add.")] = "adapted",
    source: Annotated[
        str | None, typer.Option(help="Dense channel to adapt (default: the default one).")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Training epochs over the pseudo-queries.")] = 1.0,
    dataset: Annotated[
        Path | None, typer.Option(help="Optional BEIR folder: print before/after figures on its qrels.")
    ] = None,
    split: Annotated[str, typer.Option(help="Qrels split for --dataset.")] = "test",
) -> None:
    """Adapt INDEX's dense model to its corpus with no labels (pseudo-queries cut from its own
    documents, hard negatives from its fused search) and add it as a new channel."""
    from dataclasses import replace

    from densa.corpus import BeirDataset
    from densa.index import Index
    from densa.train.adapt import AdaptConfig, before_after
    from densa.train.adapt import adapt as adapt_index

    base = AdaptConfig()
    config = replace(
        base,
        queries=queries,
        pseudo=pseudo,  # type: ignore[arg-type]  # AdaptConfig checks it
        channel=channel,
        source=source,
        train=replace(base.train, epochs=epochs),
    )
    result = adapt_index(Index.open(index_path), output, config)
    typer.echo(
        f"adapted on {result.kept} of {result.pseudo_queries} pseudo-queries in "
        f"{result.training.seconds / 60:.1f} min ({result.training.steps} steps); model in {result.model}; "
        f"channel {channel} added to {index_path}"
    )
    _measure_fusion(result.index)
    if dataset is not None:
        name = source or result.index.default_dense
        rows = before_after(result.index, BeirDataset(dataset), split, name, channel)
        typer.echo(f"{'':<24}{'nDCG@10':>10}{'Recall@100':>12}")
        for label, metrics in rows.items():
            typer.echo(f"{label:<24}{metrics['ndcg@10']:>10.4f}{metrics['recall@100']:>12.4f}")


@app.command()
def distill(
    output: Annotated[Path, typer.Option("-o", "--output", help="Static model folder to create.")],
    model: Annotated[
        str, typer.Option(help="Transformer model folder to distil.")
    ] = "bundled:all-MiniLM-L6-v2",
    pca_dims: Annotated[int, typer.Option(help="Dimensions kept by PCA (0: keep all).")] = 256,
) -> None:
    """Distil a static embedding model (model2vec's recipe) from a transformer, offline; index
    with it through --model OUTPUT (165-206x faster to encode than MiniLM here, bench/results/static.md)."""
    from densa.encode.static import distill as distil_static

    folder = distil_static(output, model, pca_dims=pca_dims or None, progress=True)
    typer.echo(f"static model written to {folder}")


@app.command()
def calibrate(
    index_path: IndexArg,
    queries: Annotated[int, typer.Option(help="Pseudo-queries to cut from the corpus.")] = 400,
) -> None:
    """Measure INDEX's channels on pseudo-queries cut from its corpus (no labels): the weights of
    its default fusion. densa index / add-channel do this; run it again after large changes."""
    from densa.index import Index
    from densa.search.calibrate import calibrate as measure_channels
    from densa.search.calibrate import describe

    with Index.open(index_path) as index:
        typer.echo(describe(measure_channels(index, queries), list(index.channels)))


@app.command()
def export(
    index_path: IndexArg,
    engine: Annotated[
        str,
        typer.Option(help="qdrant | milvus (embedded) | qdrant+http://HOST:6333 | milvus://HOST:19530."),
    ],
    channel: Annotated[str, typer.Option(help="The dense channel whose vectors to export.")] = "dense",
    name: Annotated[
        str | None, typer.Option(help="The new channel's name (default: CHANNEL-ENGINE).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="The engine's index kind (default: the channel's).")
    ] = None,
) -> None:
    """Copy a dense channel's vectors into an engine as a new channel (no re-encoding); search it
    with --mode NAME, fuse it like any other channel."""
    from dataclasses import replace

    from densa.index import Index
    from densa.index.engines import EngineLocation

    index = Index.open(index_path)
    source = index.dense_kind(channel).vectors
    target = replace(source, kind=kind or source.kind, engine=engine)  # type: ignore[arg-type]
    new_name = name or f"{channel}-{EngineLocation.parse(engine).name}"
    updated = index.copy_channel(channel, new_name, target, progress=True)
    typer.echo(
        f"exported channel {channel} ({updated.manifest.passages} passages) to {target.engine} as channel "
        f"{new_name} ({target.kind}); channels: {', '.join(updated.channels)}"
    )


@app.command()
def optimize(index_path: IndexArg) -> None:
    """Merge INDEX's segments into one, without deleted documents (searches keep running)."""
    from densa.index import Index

    before = Index.open(index_path)
    segments = len(before.manifest.segments)
    after = before.optimize()
    typer.echo(
        f"{index_path}: {segments} segment(s) -> {len(after.manifest.segments)}; {len(after)} documents"
    )


@app.command()
def upgrade(index_path: IndexArg) -> None:
    """Convert an index written by an older densa (format 1) to this version's format, in place,
    without re-encoding."""
    from densa.index.upgrade import upgrade_index

    typer.echo(upgrade_index(index_path))


@app.command()
def search(
    ctx: typer.Context,
    index_path: IndexArg,
    query: Annotated[str | None, typer.Argument(help="Query text.")] = None,
    k: Annotated[
        int | None,
        typer.Option("-k", help="Results per query (default: 10; 1000 with --queries, as Pyserini)."),
    ] = None,
    queries: Annotated[Path | None, typer.Option(help="queries.jsonl or qid<TAB>text file.")] = None,
    output: Annotated[Path | None, typer.Option(help="TREC run file to write (with --queries).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    mode: ModeOpt = "dense",
    fusion: FusionOpt = None,
    weights: WeightsOpt = None,
    normalization: NormOpt = None,
    rrf_k: RrfKOpt = None,
    depth: DepthOpt = 100,
    rerank: RerankOpt = None,
    rerank_depth: RerankDepthOpt = 100,
    rerank_weight: RerankWeightOpt = 1.0,
    filters: FilterOpt = None,
    aggregate: AggregateOpt = "max",
    top_passages: TopPassagesOpt = 3,
    model: ModelOpt = None,
    backend: QueryBackendOpt = "auto",
    pipeline: PipelineOpt = None,
) -> None:
    """Search INDEX for one QUERY, or for every query of --queries into a TREC run file."""
    from densa.corpus import read_queries
    from densa.index import parse_filter

    if (query is None) == (queries is None):
        raise DensaError("give either a QUERY or --queries FILE")
    index, chosen = _open_for_search(ctx, index_path, model, backend, pipeline)
    searcher = _searcher(
        ctx,
        index,
        rerank,
        chosen,
        mode=mode,
        fusion=fusion,
        weights=weights,
        normalization=normalization,
        rrf_k=rrf_k,
        depth=depth,
        aggregate=aggregate,
        top_passages=top_passages,
        rerank_depth=rerank_depth,
        rerank_weight=rerank_weight,
    )
    where = parse_filter(filters or [])
    if queries is not None:
        run = searcher.search(read_queries(queries), k or BATCH_K, filter=where)
        if output is None:
            for line in run.to_trec_lines():
                typer.echo(line)
        else:
            run.write_trec(output)
            typer.echo(
                f"wrote {sum(len(d) for d in run.scores.values())} results for {len(run)} queries to {output}"
            )
        return
    assert query is not None
    hits = searcher.hits([query], k or 10, filter=where)[0]
    if as_json:
        _echo_json(
            [
                {
                    "rank": h.rank,
                    "id": h.doc_id,
                    "score": h.score,
                    "title": h.title,
                    "snippet": _snippet(h.passage or h.text),
                }
                for h in hits
            ]
        )
        return
    if not hits:
        typer.echo(
            "no results" + (" (the filter matches no document, or no document matches)" if where else "")
        )
    for h in hits:
        title = f"  {h.title}" if h.title else ""
        typer.echo(f"{h.rank:>3}  {h.score:.4f}  {h.doc_id}{title}\n     {_snippet(h.passage or h.text)}")


@app.command("eval")
def eval_(
    ctx: typer.Context,
    index_path: Annotated[Path | None, typer.Argument(metavar="[INDEX]", help="Index folder.")] = None,
    dataset: Annotated[Path | None, typer.Option(help="BEIR dataset folder.")] = None,
    split: Annotated[str, typer.Option(help="Qrels split.")] = "test",
    run_file: Annotated[Path | None, typer.Option("--run", help="TREC run file to score.")] = None,
    qrels_file: Annotated[Path | None, typer.Option("--qrels", help="Qrels (BEIR TSV or TREC).")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the run to this TREC file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    mode: ModeOpt = "dense",
    fusion: FusionOpt = None,
    weights: WeightsOpt = None,
    normalization: NormOpt = None,
    rrf_k: RrfKOpt = None,
    depth: DepthOpt = 100,
    rerank: RerankOpt = None,
    rerank_depth: RerankDepthOpt = 100,
    rerank_weight: RerankWeightOpt = 1.0,
    aggregate: AggregateOpt = "max",
    top_passages: TopPassagesOpt = 3,
    model: ModelOpt = None,
    backend: QueryBackendOpt = None,
    pipeline: PipelineOpt = None,
) -> None:
    """Score INDEX on --dataset, or --run against --qrels (nDCG@10, Recall@100, MRR@10, accuracy@k)."""
    from densa.corpus import BeirDataset, read_qrels
    from densa.evaluate import evaluate, evaluate_channels, evaluate_dataset
    from densa.types import Run

    if run_file is not None or qrels_file is not None:
        if run_file is None or qrels_file is None or index_path is not None or pipeline is not None:
            raise DensaError("scoring a run file needs both --run and --qrels, and no INDEX")
        result = evaluate(Run.read_trec(run_file), read_qrels(qrels_file))
        channels = {}
    else:
        if index_path is None or dataset is None:
            raise DensaError("give INDEX and --dataset, or --run and --qrels")
        index, chosen = _open_for_search(ctx, index_path, model, backend, pipeline)
        searcher = _searcher(
            ctx,
            index,
            rerank,
            chosen,
            mode=mode,
            fusion=fusion,
            weights=weights,
            normalization=normalization,
            rrf_k=rrf_k,
            depth=depth,
            aggregate=aggregate,
            top_passages=top_passages,
            rerank_depth=rerank_depth,
            rerank_weight=rerank_weight,
        )
        beir = BeirDataset(dataset)
        result, run = evaluate_dataset(searcher, beir, split)
        if output is not None:
            run.write_trec(output)
        channels = evaluate_channels(searcher, beir, split)
    if as_json:
        _echo_json(
            {**result.metrics, "channels": {n: r.metrics for n, r in channels.items()}}
            if channels
            else result.metrics
        )
        return
    if not channels:
        for name, value in result.metrics.items():
            typer.echo(f"{name:<14}{value:.4f}" if isinstance(value, float) else f"{name:<14}{value}")
        return
    # each channel alone beside the fused search
    columns = {
        **{n: r.metrics for n, r in channels.items()},
        searcher.config.mode + (" +rerank" if searcher.reranker else ""): result.metrics,
    }
    typer.echo(f"{'':<14}" + "".join(f"{name:>14}" for name in columns))
    for name in result.metrics:
        cells = [c[name] for c in columns.values()]
        typer.echo(
            f"{name:<14}" + "".join(f"{v:>14.4f}" if isinstance(v, float) else f"{v:>14}" for v in cells)
        )


@app.command()
def fuse(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="Two or more TREC run files.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Fused TREC run file.")],
    fusion: FusionOpt = None,
    weights: WeightsOpt = None,
    normalization: NormOpt = None,
    rrf_k: RrfKOpt = None,
    k: Annotated[int, typer.Option("-k", help="Results kept per query.")] = 1000,
) -> None:
    """Fuse TREC run files (RRF or weighted) into one."""
    from densa.fuse import fuse_runs
    from densa.types import Run

    fused = fuse_runs(
        [Run.read_trec(p) for p in runs], _fusion_config(fusion, weights, normalization, rrf_k), k
    )
    fused.write_trec(output)
    typer.echo(f"fused {len(runs)} runs over {len(fused)} queries into {output}")


@app.command("mine-negatives")
def mine_negatives(
    dataset: Annotated[Path, typer.Option(help="BEIR dataset folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="DPR-format JSONL to write.")],
    split: Annotated[
        str, typer.Option(help="Qrels split to mine (never test when you evaluate on it).")
    ] = "train",
    miner: Annotated[str, typer.Option(help="bm25 | dense | hybrid.")] = "bm25",
    depth: Annotated[int, typer.Option(help="How deep in each ranking to look.")] = 30,
    per_query: Annotated[int, typer.Option(help="Hard negatives kept per question.")] = 4,
    margin: Annotated[
        float, typer.Option(help="Skip candidates scoring above (1 - margin) x the positive.")
    ] = 0.05,
    index_path: Annotated[
        Path | None, typer.Option("--index", help="Index of the corpus (dense/hybrid).")
    ] = None,
) -> None:
    """Mine hard negatives for a dataset split into DPR's training format."""
    from densa.corpus import BeirDataset
    from densa.train import MiningConfig, mine_dataset, write_dpr

    config = MiningConfig(miner=miner, depth=depth, per_query=per_query, relative_margin=margin or None)  # type: ignore[arg-type]
    examples = mine_dataset(BeirDataset(dataset), split, config, index_path)
    count = write_dpr(examples, output)
    negatives = sum(len(e.hard_negatives) for e in examples)
    typer.echo(f"wrote {count} examples with {negatives} hard negatives to {output}")


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="DPR-format training data (JSONL or DPR's JSON).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.")],
    family: Annotated[
        str,
        typer.Option(help="dense (a bi-encoder) | colbert (late interaction, MaxSim over token vectors)."),
    ] = "dense",
    base: Annotated[str | None, typer.Option(help="Model to start from (default: bundled MiniLM).")] = None,
    pooling: Annotated[str | None, typer.Option(help="Pooling for a plain transformers base.")] = None,
    query_prefix: Annotated[str, typer.Option(help="Query instruction.")] = "",
    passage_prefix: Annotated[str, typer.Option(help="Passage instruction.")] = "",
    separate_towers: Annotated[bool, typer.Option(help="Separate query and passage encoders (DPR).")] = False,
    epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 1.0,
    max_steps: Annotated[int, typer.Option(help="Stop after N steps (overrides --epochs).")] = -1,
    batch_size: Annotated[int, typer.Option(help="Questions per step.")] = 32,
    mini_batch_size: Annotated[int | None, typer.Option(help="Gradient caching chunk size.")] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate (default: dense 2e-5, colbert 3e-5).")
    ] = None,
    warmup_ratio: Annotated[float, typer.Option(help="Warm-up share of the steps.")] = 0.1,
    temperature: Annotated[
        float | None, typer.Option(help="Softmax temperature (default: dense 0.05, colbert 1 over MaxSim).")
    ] = None,
    hard_negatives: Annotated[int, typer.Option(help="Hard negatives per question.")] = 1,
    matryoshka: Annotated[str | None, typer.Option(help="Matryoshka dims, e.g. 384,256,128,64.")] = None,
    dim: Annotated[int, typer.Option(help="colbert: token vector dimension of a new model.")] = 128,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="colbert: distil from this cross-encoder or ColBERT folder's scores (KL divergence)."
        ),
    ] = None,
    inference_free: Annotated[
        bool,
        typer.Option(help="splade: queries weighted by a trained lookup table (no encoder at query time)."),
    ] = False,
    document_regularizer: Annotated[
        float, typer.Option(help="splade: FLOPS weight on document terms.")
    ] = 3e-5,
    query_regularizer: Annotated[float, typer.Option(help="splade: FLOPS weight on query terms.")] = 5e-5,
    dev_fraction: Annotated[float, typer.Option(help="Share of the data held out as dev.")] = 0.1,
    max_length: Annotated[
        int | None,
        typer.Option(
            help="Token limit while training, saved with the model (colbert: document length, 180)."
        ),
    ] = None,
    eval_steps: Annotated[int, typer.Option(help="Score dev every N steps.")] = 50,
    save_steps: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 50,
    keep_best: Annotated[
        bool,
        typer.Option(
            "--keep-best", help="dense: save the checkpoint with the best dev nDCG@10, not the last."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Train a retriever on questions with positives and hard negatives: a bi-encoder (InfoNCE with
    in-batch and hard negatives) or a ColBERT model (the same loss over MaxSim scores)."""
    from densa.encode import DEFAULT_MODEL
    from densa.train import TrainConfig, read_dpr, train_bi_encoder

    if family not in ("dense", "colbert", "splade", "static"):
        raise typer.BadParameter(f"--family is dense, colbert, splade or static, not {family!r}")
    if teacher is not None and family != "colbert":
        raise typer.BadParameter(
            "--teacher: only for --family colbert (the reranker trains with densa train-reranker)"
        )
    result: Any
    if family != "dense":
        unsupported = {
            "--pooling": pooling is not None,
            "--query-prefix / --passage-prefix": bool(query_prefix or passage_prefix),
            "--separate-towers": separate_towers,
            "--mini-batch-size": mini_batch_size is not None,
            "--matryoshka": matryoshka is not None,
            "--keep-best": keep_best,
        }
        if any(unsupported.values()):
            names = ", ".join(k for k, v in unsupported.items() if v)
            raise typer.BadParameter(f"{names}: not for --family {family}")
    # the options every family's config takes as they are
    shared: dict[str, Any] = {
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "warmup_ratio": warmup_ratio,
        "hard_negatives": hard_negatives,
        "dev_fraction": dev_fraction,
        "eval_steps": eval_steps,
        "save_steps": save_steps,
        "seed": seed,
    }
    if family == "static":
        from densa.train.static import StaticTrainConfig, train_static

        if base is None:
            raise typer.BadParameter("--family static needs --base STATIC_DIR (a model from densa distill)")
        static = StaticTrainConfig(
            base=base,
            learning_rate=learning_rate or StaticTrainConfig.learning_rate,
            temperature=temperature or StaticTrainConfig.temperature,
            **shared,
        )
        result = train_static(read_dpr(data), output, static)
        use = f"index with it: densa index CORPUS -o INDEX --model {output}"
    elif family == "splade":
        from densa.train.sparse import SpladeTrainConfig, train_splade

        splade = SpladeTrainConfig(
            base=base or DEFAULT_MODEL,
            max_length=max_length or SpladeTrainConfig.max_length,
            learning_rate=learning_rate or SpladeTrainConfig.learning_rate,
            document_regularizer=document_regularizer,
            query_regularizer=query_regularizer,
            inference_free=inference_free,
            **shared,
        )
        result, notes = train_splade(read_dpr(data), output, splade)
        for note in notes:
            typer.echo(note)
        use = f"index it with: densa index CORPUS -o INDEX --channel splade --splade-model {output}"
    elif family == "colbert":
        from densa.train.colbert import ColbertTrainConfig, train_colbert

        colbert = ColbertTrainConfig(
            base=base or DEFAULT_MODEL,
            dim=dim,
            document_length=max_length or ColbertTrainConfig.document_length,
            learning_rate=learning_rate or ColbertTrainConfig.learning_rate,
            temperature=temperature or ColbertTrainConfig.temperature,
            teacher=teacher,
            **shared,
        )
        result = train_colbert(read_dpr(data), output, colbert)
        use = f"index it with: densa index CORPUS -o INDEX --channel colbert --colbert-model {output}"
    else:
        config = TrainConfig(
            base=base or DEFAULT_MODEL,
            pooling=pooling,  # type: ignore[arg-type]
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            separate_towers=separate_towers,
            mini_batch_size=mini_batch_size,
            learning_rate=learning_rate or TrainConfig.learning_rate,
            temperature=temperature or TrainConfig.temperature,
            matryoshka_dims=_int_list(matryoshka),
            max_length=max_length,
            keep_best=keep_best,
            **shared,
        )
        result = train_bi_encoder(read_dpr(data), output, config)
        use = f"index with it: densa index CORPUS -o INDEX --model {output}"
    dev = f", dev nDCG@10 {result.dev_ndcg:.4f}" if result.dev_ndcg is not None else ""
    typer.echo(f"trained {result.steps} steps in {result.seconds:.0f}s{dev}; model in {output}; {use}")


@app.command("train-reranker")
def train_reranker(
    data: Annotated[Path, typer.Option(help="DPR-format data with hard negatives.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Cross-encoder folder to write.")],
    base: Annotated[str | None, typer.Option(help="Model to start from (default: bundled MiniLM).")] = None,
    loss: Annotated[
        str,
        typer.Option(
            help="listwise (positive vs its negatives, softmax) | bce (pointwise) | "
            "distill (listwise, from the mining ranking's scores)."
        ),
    ] = "listwise",
    epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 2.0,
    max_steps: Annotated[int, typer.Option(help="Stop after N steps (overrides --epochs).")] = -1,
    batch_size: Annotated[int, typer.Option(help="Questions (listwise) or pairs (bce) per step.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-5,
    negatives: Annotated[int, typer.Option(help="Hard negatives per question.")] = 4,
    in_batch_negatives: Annotated[
        int, typer.Option(help="Listwise: other questions' passages added as negatives.")
    ] = 2,
    max_length: Annotated[int, typer.Option(help="Token limit of a (question, passage) pair.")] = 192,
    temperature: Annotated[
        float, typer.Option(help="Distill: softmax temperature of the teacher's z-scored scores.")
    ] = 1.0,
    dev_fraction: Annotated[float, typer.Option(help="Share of the data held out as dev.")] = 0.1,
    eval_steps: Annotated[int, typer.Option(help="Score dev every N steps.")] = 100,
    save_steps: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """Train a cross-encoder reranker on (question, positive / hard negative) pairs."""
    from densa.encode import DEFAULT_MODEL
    from densa.train import RerankerConfig, read_dpr
    from densa.train import train_reranker as run_training

    config = RerankerConfig(
        base=base or DEFAULT_MODEL,
        loss=loss,  # type: ignore[arg-type]
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        negatives_per_question=negatives,
        in_batch_negatives=in_batch_negatives,
        max_length=max_length,
        temperature=temperature,
        dev_fraction=dev_fraction,
        eval_steps=eval_steps,
        save_steps=save_steps,
        seed=seed,
    )
    run_training(read_dpr(data), output, config)
    typer.echo(f'reranker saved to {output}; use it with: densa search INDEX "query" --rerank {output}')


def _int_list(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise DensaError(f"{text!r} is not a comma-separated list of integers") from None


# serve's options that a --pipeline file also sets, and the ServeConfig field each one is
_SERVE_PIPELINE_OPTIONS = {"rerank": "reranker", "rerank_weight": "rerank_weight", "backend": "backend"}


@app.command()
def serve(
    ctx: typer.Context,
    index_path: IndexArg,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    api_key: Annotated[
        str | None, typer.Option(envvar="DENSA_API_KEY", help="Key required by write endpoints.")
    ] = None,
    read_only: Annotated[bool, typer.Option(help="Refuse all writes.")] = False,
    rerank: RerankOpt = None,
    rerank_weight: RerankWeightOpt = 1.0,
    device: Annotated[str | None, typer.Option(help="cpu | cuda.")] = None,
    backend: QueryBackendOpt = "auto",
    pipeline: Annotated[
        Path | None,
        typer.Option(
            help="Pipeline JSON file: the search options of requests that leave them out, its "
            "reranker (used unless a request says rerank false) and backend; options given here win."
        ),
    ] = None,
) -> None:
    """Serve INDEX over HTTP: search API, document API, RAG context, and the search page at /."""
    from densa._optional import require
    from densa.search.pipeline import read_pipeline
    from densa.serve import ServeConfig, with_pipeline
    from densa.serve.app import create_app

    uvicorn = require("uvicorn", "serve")
    config = ServeConfig(
        index=index_path,
        host=host,
        port=port,
        api_key=api_key,
        read_only=read_only,
        reranker=rerank,
        rerank_weight=rerank_weight,
        device=device,
        backend=backend,  # type: ignore[arg-type]
    )
    if pipeline is not None:
        given = {field for option, field in _SERVE_PIPELINE_OPTIONS.items() if _given(ctx, option)}
        config = with_pipeline(config, read_pipeline(pipeline), given)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 PID` prints every thread's stack (a stuck server)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    application = create_app(config)
    typer.echo(f"serving {index_path} on http://{host}:{port}/  (API docs at /docs)")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command()
def info(index_path: IndexArg) -> None:
    """Show an index's manifest: model, dimension, kind, counts and bytes."""
    from densa.index import Index

    _echo_json(Index.open(index_path).info())


@app.command()
def demo(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Keep the sample index here.")] = None,
    query: Annotated[str, typer.Option(help="Query to run.")] = "heart attack",
) -> None:
    """Index the bundled sample corpus and search it: a meaning match keyword search misses."""
    from densa.demo import run_demo, shared_words

    with tempfile.TemporaryDirectory() as tmp:
        result = run_demo(output or Path(tmp) / "sample-index", query)
    typer.echo(f"\nquery: {query!r}\n")
    for name, hits in (("BM25 (keywords)", result.bm25), ("dense (all-MiniLM-L6-v2)", result.dense)):
        typer.echo(f"{name}:")
        if not hits:
            typer.echo("   no document shares a word with the query")
        for h in hits:
            shared = sorted(shared_words(query, f"{h.title} {h.text}"))
            overlap = "shares: " + ", ".join(shared) if shared else "no shared word: a match by meaning"
            typer.echo(f"  {h.rank}. [{h.score:.3f}] {h.title}  ({overlap})")
        typer.echo("")
    if output is not None:
        typer.echo(f'index kept at {output}; try: densa search {output} "your question" --mode hybrid')


def main() -> None:
    """Entry point of the ``densa`` console script."""
    try:
        app()
    except DensaError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
