"""The ``densa`` command line: one subcommand per stage.

Each command turns its options into library configuration, calls the library, and
prints the result; no retrieval logic lives here.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from densa.errors import DensaError

app = typer.Typer(
    name="densa",
    help="Dense passage retrieval: index a corpus, search it by meaning, evaluate it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model folder (default: bundled all-MiniLM-L6-v2).")
]


@app.callback()
def _quiet_model_loading() -> None:
    """Dense passage retrieval: index a corpus, search it by meaning, evaluate it."""
    # densa shows its own progress bars; transformers' per-load weight bar is noise here.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _snippet(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
def index(
    corpus: Annotated[Path, typer.Argument(help="corpus.jsonl, a TSV file, or a folder of .txt/.md files.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Index folder to create.")],
    model: ModelOpt = None,
    query_model: Annotated[str | None, typer.Option(help="Separate query-tower folder (DPR).")] = None,
    pooling: Annotated[str | None, typer.Option(help="cls | mean | max | last-token.")] = None,
    similarity: Annotated[str | None, typer.Option(help="cosine | dot.")] = None,
    query_prefix: Annotated[str, typer.Option(help="Instruction put before each query.")] = "",
    passage_prefix: Annotated[str, typer.Option(help="Instruction put before each passage.")] = "",
    max_length: Annotated[int | None, typer.Option(help="Token limit (default: the model's).")] = None,
    dim: Annotated[int | None, typer.Option(help="Matryoshka: keep the first DIM dimensions.")] = None,
    kind: Annotated[str, typer.Option(help="flat (exact) | hnsw.")] = "flat",
    corpus_format: Annotated[str, typer.Option("--format", help="auto | jsonl | tsv | folder.")] = "auto",
    skip_bad: Annotated[bool, typer.Option(help="Skip bad records and report them.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index.")] = False,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 32,
    device: Annotated[str | None, typer.Option(help="cpu | cuda (default: cuda when present).")] = None,
) -> None:
    """Encode CORPUS and write an index folder."""
    from densa.corpus import SkipReport, read_corpus
    from densa.encode import DEFAULT_MODEL, EncoderConfig
    from densa.index import Index, VectorIndexConfig

    config = EncoderConfig(
        model=model or DEFAULT_MODEL,
        query_model=query_model,
        pooling=pooling,  # type: ignore[arg-type]
        similarity=similarity,  # type: ignore[arg-type]
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        max_length=max_length,
        dim=dim,
        batch_size=batch_size,
        device=device,
    )
    report = SkipReport()
    docs = read_corpus(corpus, format=corpus_format, skip_bad=skip_bad, report=report)  # type: ignore[arg-type]
    built = Index.build(
        docs,
        output,
        encoder=config,
        vectors=VectorIndexConfig(kind=kind),  # type: ignore[arg-type]
        overwrite=overwrite,
        progress=True,
    )
    stats = built.build_stats
    assert stats is not None
    typer.echo(
        f"indexed {stats.documents} documents into {output} "
        f"in {stats.seconds:.1f}s ({stats.docs_per_second:.1f} docs/s)"
    )
    if stats.truncated:
        typer.echo(
            f"note: {stats.truncated} document(s) are longer than the model's "
            f"{built.manifest.encoder.max_length}-token limit; only their first tokens are encoded"
        )
    if len(report):
        typer.echo(report.summary(), err=True)


@app.command()
def search(
    index_path: Annotated[Path, typer.Argument(metavar="INDEX", help="Index folder.")],
    query: Annotated[str | None, typer.Argument(help="Query text.")] = None,
    k: Annotated[int, typer.Option("-k", help="Results per query.")] = 10,
    queries: Annotated[Path | None, typer.Option(help="queries.jsonl or qid<TAB>text file.")] = None,
    output: Annotated[Path | None, typer.Option(help="TREC run file to write (with --queries).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: ModelOpt = None,
) -> None:
    """Search INDEX for one QUERY, or for every query of --queries into a TREC run file."""
    from densa.corpus import read_queries
    from densa.index import Index
    from densa.search import DenseRetriever

    if (query is None) == (queries is None):
        raise DensaError("give either a QUERY or --queries FILE")
    idx = Index.open(index_path, model=model)
    if queries is not None:
        run = DenseRetriever(idx).search(read_queries(queries), k)
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
    hits = idx.search([query], k)[0]
    if as_json:
        _echo_json(
            [
                {
                    "rank": h.rank,
                    "id": h.doc_id,
                    "score": h.score,
                    "title": h.title,
                    "snippet": _snippet(h.text),
                }
                for h in hits
            ]
        )
        return
    for h in hits:
        title = f"  {h.title}" if h.title else ""
        typer.echo(f"{h.rank:>3}  {h.score:.4f}  {h.doc_id}{title}\n     {_snippet(h.text)}")


@app.command("eval")
def eval_(
    index_path: Annotated[Path | None, typer.Argument(metavar="[INDEX]", help="Index folder.")] = None,
    dataset: Annotated[Path | None, typer.Option(help="BEIR dataset folder.")] = None,
    split: Annotated[str, typer.Option(help="Qrels split.")] = "test",
    run_file: Annotated[Path | None, typer.Option("--run", help="TREC run file to score.")] = None,
    qrels_file: Annotated[Path | None, typer.Option("--qrels", help="Qrels (BEIR TSV or TREC).")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the run to this TREC file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    model: ModelOpt = None,
) -> None:
    """Score INDEX on --dataset, or score --run against --qrels (nDCG@10, Recall@100, MRR@10, accuracy@k)."""
    from densa.corpus import BeirDataset, read_qrels
    from densa.evaluate import evaluate, evaluate_dataset
    from densa.index import Index
    from densa.search import DenseRetriever
    from densa.types import Run

    if run_file is not None or qrels_file is not None:
        if run_file is None or qrels_file is None or index_path is not None:
            raise DensaError("scoring a run file needs both --run and --qrels, and no INDEX")
        result = evaluate(Run.read_trec(run_file), read_qrels(qrels_file))
    else:
        if index_path is None or dataset is None:
            raise DensaError("give INDEX and --dataset, or --run and --qrels")
        idx = Index.open(index_path, model=model)
        result, run = evaluate_dataset(DenseRetriever(idx), BeirDataset(dataset), split)
        if output is not None:
            run.write_trec(output)
    if as_json:
        _echo_json(result.metrics)
        return
    for name, value in result.metrics.items():
        typer.echo(f"{name:<14}{value:.4f}" if isinstance(value, float) else f"{name:<14}{value}")


@app.command()
def info(
    index_path: Annotated[Path, typer.Argument(metavar="INDEX", help="Index folder.")],
) -> None:
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
        typer.echo(f"\nquery: {query!r}  (dense search, all-MiniLM-L6-v2)\n")
        for h in result.dense:
            shared = sorted(shared_words(query, f"{h.title} {h.text}"))
            overlap = ", ".join(shared) if shared else "none: a match by meaning only"
            typer.echo(f"{h.rank}. [{h.score:.3f}] {h.title}  (words shared with the query: {overlap})")
            typer.echo(f"   {_snippet(h.text, 110)}")
    if output is not None:
        typer.echo(f'\nindex kept at {output}; try: densa search {output} "your question"')


def main() -> None:
    """Entry point of the ``densa`` console script."""
    try:
        app()
    except DensaError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
