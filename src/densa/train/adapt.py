"""``densa adapt``: fit a dense channel's model to a corpus without labels or a generator.

Training pairs come from the corpus itself, by the inverse cloze task (Lee, Chang &
Toutanova 2019): a sentence cut out of a document is a pseudo-query whose positive is the
rest of that document. The index's own fused search is the filter and the source of hard
negatives: a sentence whose document is not in the fused top ``keep_within`` does not
identify it (e.g. "Results are shown below.") and is dropped; the documents ranked just
below the answer are its hard negatives (the first ``skip`` of them are left out, as they
are the likeliest to be relevant too). The model is then fine-tuned with the same
contrastive trainer as ``densa train`` (in-batch and hard negatives, InfoNCE) and added to
the index as a new dense channel, beside the one it started from, without touching it.

With ``pseudo="title"``, a document's title is the pseudo-query of its text instead (the
title-abstract pairs SPECTER (Cohan et al. 2020) trains on; the title is cut from the
passage, also where the text repeats it first); a document without a title of three or more
words falls back to the cut sentence. With ``pseudo="keywords"``, the query is three to five
of the document's most distinctive words (tf x idf, the idf taken over the sampled documents,
English stopwords left out), in the order the document first uses them: short keyword
queries, as web search users type them.

The pseudo-queries are drawn from the documents whose ids hash lowest after the 400 that
:mod:`densa.search.calibrate` measures the fusion on (after half the sample in a corpus of
fewer than 800 such documents), so the fusion is not measured on the documents the model
was trained on.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from densa.encode.config import EncoderConfig
from densa.encode.model_files import is_sentence_transformers_folder, resolve_model_path
from densa.errors import ConfigError, DensaError
from densa.index import DenseChannel, Index
from densa.index.channels.bm25 import Analyzer, BM25Config
from densa.search.calibrate import PSEUDO_QUERIES, inverse_cloze, sample_documents
from densa.search.config import SearchConfig
from densa.search.searcher import Searcher
from densa.train.bi_encoder import TrainConfig, TrainResult, train_bi_encoder
from densa.train.data import Passage, TrainingExample
from densa.types import Document, Query

__all__ = [
    "PSEUDO_KINDS",
    "AdaptConfig",
    "AdaptResult",
    "adapt",
    "before_after",
    "keyword_pairs",
    "pseudo_examples",
    "title_pairs",
]

#: Where ``densa adapt``'s pseudo-queries come from (see the module).
Pseudo = Literal["cloze", "title", "keywords"]
PSEUDO_KINDS: tuple[str, ...] = get_args(Pseudo)

_CALIBRATION_QUERIES = PSEUDO_QUERIES  # the documents the fusion is measured on come first
_TITLE_WORDS = 3  # a shorter title ("Introduction", an id) is no query


@dataclass(frozen=True)
class AdaptConfig:
    """What ``densa adapt`` does.

    Parameters
    ----------
    queries
        Pseudo-queries to cut from the corpus (documents of 20+ words, one sentence each).
    pseudo
        Where pseudo-queries come from: ``"cloze"``, a sentence cut out of the document;
        ``"title"``, the document's title as the query of its text (cloze where a document
        has no title of 3+ words); ``"keywords"``, 3-5 of its most distinctive words.
    source
        The dense channel whose model is adapted (default: the index's default dense one).
    channel
        Name of the adapted channel added to the index.
    keep_within
        Keep a pseudo-query only if its document is in the fused top this many.
    skip, hard_negatives
        Hard negatives: the fused ranking's documents after the answer, leaving out the
        first ``skip``, ``hard_negatives`` of them.
    train
        Training options (``base`` is set to the source channel's model).
    seed
        Which sentence is cut from each document.
    """

    queries: int = 2000
    pseudo: Pseudo = "cloze"
    source: str | None = None
    channel: str = "adapted"
    keep_within: int = 10
    skip: int = 2
    hard_negatives: int = 1
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_length=256, dev_fraction=0.05))
    seed: int = 0

    def __post_init__(self) -> None:
        if self.queries < 10:
            raise ConfigError("adapt needs at least 10 pseudo-queries")
        if self.pseudo not in PSEUDO_KINDS:
            raise ConfigError(f"pseudo-queries must be one of {', '.join(PSEUDO_KINDS)}; got {self.pseudo!r}")
        if self.keep_within < 1 or self.skip < 0 or self.hard_negatives < 0:
            raise ConfigError("keep_within must be positive; skip and hard_negatives non-negative")


@dataclass(frozen=True)
class AdaptResult:
    """The adapted index, the model folder, and what went into training."""

    index: Index
    model: Path
    pseudo_queries: int
    kept: int
    training: TrainResult


def pseudo_examples(index: Index, config: AdaptConfig) -> tuple[int, list[TrainingExample]]:
    """Cut pseudo-queries from ``index``'s corpus and make training examples of those its fused
    search confirms; returns how many were cut and the examples."""
    sample = sample_documents(index, _CALIBRATION_QUERIES + config.queries)
    docs = sample[min(_CALIBRATION_QUERIES, len(sample) // 2) :][: config.queries]
    if len(docs) < 10:
        raise DensaError(f"{index.path}: only {len(sample)} documents of 20+ words; too few to adapt a model")
    make = {"cloze": inverse_cloze, "title": title_pairs, "keywords": keyword_pairs}[config.pseudo]
    pairs = make(docs, config.seed)
    depth = config.keep_within + config.skip + config.hard_negatives + 1
    queries = [Query(f"p{i}", query) for i, (query, _) in enumerate(pairs)]
    run = Searcher(index, SearchConfig(mode="hybrid")).search(queries, depth)
    ranked = {q.id: sorted(run.scores.get(q.id, {}), key=lambda d: -run.scores[q.id][d]) for q in queries}
    wanted = {d for ids in ranked.values() for d in ids}
    by_id = _documents(index, sorted(wanted))
    examples = []
    for query, doc, (text, rest) in zip(queries, docs, pairs, strict=True):
        ids = ranked[query.id]
        if doc.id not in ids[: config.keep_within]:
            continue
        after = ids[ids.index(doc.id) + 1 :][config.skip :]
        negatives = tuple(Passage.of(by_id[d]) for d in after[: config.hard_negatives] if d in by_id)
        examples.append(  # ``rest`` is the whole positive: the cloze keeps the title in it
            TrainingExample(text, (Passage(rest, id=doc.id),), negatives, id=f"{doc.id}:{query.id}")
        )
    return len(pairs), examples


def title_pairs(documents: Sequence[Document], seed: int = 0) -> list[tuple[str, str]]:
    """``(title, text)`` per document, the title cut from the text's start where the text
    repeats it; a document whose title has fewer than 3 words gives its cloze pair instead.

    Examples
    --------
    >>> docs = [Document("d1", "Aspirin and fever. Aspirin lowers fever in adults.", "Aspirin and fever.")]
    >>> title_pairs(docs)
    [('Aspirin and fever.', 'Aspirin lowers fever in adults.')]
    """
    titles = [_title(doc) for doc in documents]
    cloze = iter(inverse_cloze([d for d, t in zip(documents, titles, strict=True) if t is None], seed))
    pairs = []
    for doc, title in zip(documents, titles, strict=True):
        if title is None:
            pairs.append(next(cloze))
            continue
        text = " ".join(doc.text.split())
        if text.lower().startswith(title.lower()):
            text = text[len(title) :].strip()
        pairs.append((title, text or title))
    return pairs


def _title(doc: Document) -> str | None:
    """The document's title, spaces normalised, or ``None`` if it has under 3 words."""
    words = doc.title.split()
    return " ".join(words) if len(words) >= _TITLE_WORDS else None


def keyword_pairs(documents: Sequence[Document], seed: int = 0) -> list[tuple[str, str]]:
    """``(keywords, document)`` per document: 3-5 of its words with the highest tf x idf (idf
    over ``documents``; English stopwords, words under 3 letters and numbers left out), in the
    order the document first uses them.

    Examples
    --------
    >>> docs = [Document("d1", "Aspirin lowers fever. The fever falls in an hour."),
    ...         Document("d2", "The heart pumps blood. The blood carries oxygen.")]
    >>> keyword_pairs(docs)[0][0].split()[0]
    'aspirin'
    """
    rng = random.Random(seed)
    tokens = Analyzer(BM25Config(stemmer=None)).terms([d.full_text for d in documents])
    words = [[t for t in terms if len(t) >= 3 and not t.isdigit()] for terms in tokens]
    df = Counter(t for terms in words for t in set(terms))
    pairs = []
    for doc, terms in zip(documents, words, strict=True):
        counts = Counter(terms)
        first = {t: i for i, t in reversed(list(enumerate(terms)))}
        top = sorted(counts, key=lambda t: (-counts[t] * math.log((len(documents) + 1) / df[t]), first[t]))
        chosen = sorted(top[: rng.randint(3, 5)], key=first.__getitem__)
        pairs.append((" ".join(chosen) or doc.full_text[:64], doc.full_text))
    return pairs


def adapt(
    index: Index, output: str | Path, config: AdaptConfig | None = None, *, progress: bool = True
) -> AdaptResult:
    """Adapt ``index``'s dense model to its corpus (see the module): the model goes to
    ``output`` (a sentence-transformers folder; run again with the same ``output`` to resume
    training), and the returned index has it as channel ``config.channel``."""
    config = config or AdaptConfig()
    if config.channel in index.channels:
        raise ConfigError(f"{index.path} already has a channel named {config.channel!r}; choose --channel")
    source = index.dense_kind(config.source)
    cut, examples = pseudo_examples(index, config)
    if len(examples) < 10:
        raise DensaError(
            f"{index.path}: only {len(examples)} of {cut} pseudo-queries found their own document; "
            "too few to adapt a model"
        )
    base = source.spec.model
    plain = not is_sentence_transformers_folder(resolve_model_path(base))
    train = replace(
        config.train,
        base=base,
        hard_negatives=config.hard_negatives,
        pooling=source.spec.pooling if plain else config.train.pooling,
    )
    output = Path(output)
    result = train_bi_encoder(examples, output, train, progress=progress)
    encoder = replace(_encoder_config(source.spec), model=str(output.resolve()))
    updated = index.add_channel(config.channel, DenseChannel(encoder, source.vectors), progress=progress)
    return AdaptResult(updated, output, cut, len(examples), result)


def _encoder_config(spec: Any) -> EncoderConfig:
    """The source channel's encoder options (prefixes, token limit), for the adapted model."""
    return EncoderConfig(
        query_prefix=spec.query_prefix, passage_prefix=spec.passage_prefix, max_length=spec.max_length
    )


def _documents(index: Index, ids: Sequence[str]) -> dict[str, Document]:
    snapshot = index.snapshot
    rows = snapshot.locate(ids)
    docs = snapshot.documents(rows.values())
    return {doc_id: docs[row] for doc_id, row in rows.items()}


def before_after(
    index: Index, dataset: Any, split: str, source: str, adapted: str
) -> dict[str, dict[str, float]]:
    """nDCG@10 and Recall@100 of the source channel and the adapted one, alone and fused with
    the index's other non-dense channels (e.g. ``dense+bm25`` against ``adapted+bm25``)."""
    from densa.evaluate import evaluate_dataset

    others = [n for n, r in index.channels.items() if n not in (source, adapted) and r.kind != "dense"]
    modes = {source: source, adapted: adapted}
    if others:
        modes["+".join([source, *others])] = "+".join([source, *others])
        modes["+".join([adapted, *others])] = "+".join([adapted, *others])
    out = {}
    for label, mode in modes.items():
        result, _ = evaluate_dataset(
            Searcher(index, SearchConfig(mode=mode)), dataset, split, ["ndcg@10", "recall@100"]
        )
        out[label] = {k: float(v) for k, v in result.metrics.items() if k != "queries"}
    return out
