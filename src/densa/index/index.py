"""The index folder: one document store and any number of named channels, in segments.

Examples
--------
Build the default pair of channels (``dense`` + ``bm25``), then search with
:class:`densa.search.Searcher`::

    index = Index.build(read_corpus("corpus.jsonl"), "my-index")
    index = Index.open("my-index")
    index = index.add(read_corpus("more.jsonl"))        # one new small segment
    index = index.delete(["doc-7"])                     # one tombstone file
    index = index.add_channel("e5", DenseChannel(EncoderConfig(model="e5-small")))
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from densa.chunk.chunker import ChunkConfig
from densa.encode.config import CALIBRATION_TEXTS, Backend, EncoderConfig
from densa.encode.encoder import Encoder
from densa.errors import ConflictError, DensaError, NotFoundError
from densa.index.channels import registry
from densa.index.channels.base import BuildJob, Channel, ChannelKind, OpenOptions
from densa.index.channels.bm25 import BM25Config
from densa.index.channels.dense import DenseChannel, DenseKind
from densa.index.engines.base import ENGINES_DIR
from densa.index.leases import acquire
from densa.index.manifest import MANIFEST, SEGMENTS_DIR, ChannelRecord, Manifest, check_channel_name
from densa.index.merge import MergePolicy
from densa.index.shards import BUILD_DIR
from densa.index.snapshot import Snapshot
from densa.index.vectors import VectorIndexConfig
from densa.index.writer import (
    LOCK_FILE,
    SegmentSource,
    chunker_for,
    commit,
    copy_channel_parts,
    delete_documents,
    dir_bytes,
    merge_segments,
    write_channel_parts,
    write_lock,
    write_segment,
)
from densa.types import Document

__all__ = ["DEFAULT_CHANNELS", "BuildStats", "Index"]

#: The channels ``densa index`` builds unless told otherwise.
DEFAULT_CHANNELS = ("dense", "bm25")


@dataclass(frozen=True)
class BuildStats:
    """What a build or an update did: documents and passages written, documents over the
    token limit, time, and notes for the user (e.g. the backend agreement check)."""

    documents: int
    passages: int
    truncated: int
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0


@runtime_checkable
class _Distributable(Protocol):
    """A kind that can encode on a cluster: ``runner(address)`` is a context manager
    yielding a :class:`densa.index.encoding.BatchRunner`."""

    def runner(self, address: str) -> Any: ...


def _default_dense(records: Mapping[str, ChannelRecord]) -> str | None:
    """The channel that ``encoder=`` / ``model=`` options and :attr:`Index.encoder` mean."""
    if records.get("dense", ChannelRecord("", {})).kind == "dense":
        return "dense"
    return next((name for name, r in records.items() if r.kind == "dense"), None)


def _configs(
    channels: Mapping[str, Any] | None,
    encoder: Encoder | EncoderConfig | None,
    vectors: VectorIndexConfig | None,
    bm25: BM25Config | None,
) -> dict[str, Any]:
    if channels is None:
        return {
            "dense": DenseChannel(encoder or EncoderConfig(), vectors or VectorIndexConfig()),
            "bm25": bm25 or BM25Config(),
        }
    if encoder is not None or vectors is not None or bm25 is not None:
        raise DensaError("give either channels= or the default pair's encoder= / vectors= / bm25=, not both")
    if not channels:
        raise DensaError("an index needs at least one channel")
    for name, config in channels.items():
        check_channel_name(name)
        if not isinstance(getattr(config, "kind", None), str):
            raise DensaError(f"channel {name!r}: its config needs a 'kind' naming a registered channel kind")
    return dict(channels)


class Index:
    """A densa index folder, opened on one generation (a read-only :class:`Snapshot`).

    Use :meth:`build` to create one and :meth:`open` to load one; the constructor is
    internal. An update (:meth:`add`, :meth:`delete`, :meth:`add_channel`,
    :meth:`optimize`) commits a new generation and returns a new :class:`Index` on it
    (sharing the unchanged segments); this object keeps reading its own generation until
    :meth:`close`.
    """

    def __init__(self, path: Path, snapshot: Snapshot, options: OpenOptions) -> None:
        self.path = path
        self.snapshot = snapshot
        self._options = options
        self.build_stats: BuildStats | None = None

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        path: str | Path,
        *,
        channels: Mapping[str, Any] | None = None,
        encoder: Encoder | EncoderConfig | None = None,
        vectors: VectorIndexConfig | None = None,
        bm25: BM25Config | None = None,
        chunking: ChunkConfig | None = None,
        overwrite: bool = False,
        batch_size: int = 2048,
        progress: bool = False,
        resume: bool = True,
        dask: str | None = None,
        runner: Any = None,
        expected: int | None = None,
    ) -> Index:
        """Write a new index of ``documents`` at ``path``, every channel in one segment.

        Everything is written to a new segment; the manifest that makes it current is
        written last. If reading or encoding fails half-way, the partial segment is removed
        and whatever index was at ``path`` stays as it was. Encoded batches are kept in
        ``path/.build/`` until the build finishes, so the same build run again after a
        crash or kill encodes only what is missing.

        Parameters
        ----------
        documents
            Any iterable, e.g. :func:`densa.corpus.read_corpus`; consumed once, in batches.
        path
            The index folder to create.
        channels
            ``{name: config}``: :class:`~densa.index.channels.dense.DenseChannel`,
            :class:`BM25Config`, or any registered kind's config. Default: ``dense`` and
            ``bm25``, set by ``encoder``, ``vectors`` and ``bm25``.
        encoder, vectors, bm25
            The default pair's encoder (an :class:`Encoder` or its config; ``openvino-int8``
            is calibrated on the corpus's first passages), FAISS kind, BM25 settings.
        chunking
            Split documents longer than ``chunking.max_tokens`` into passages (default: one
            passage per document, truncated at the model's limit and counted).
        overwrite
            Replace an existing index at ``path`` (readers of it keep their generation).
        batch_size
            Documents read, stored and encoded per step.
        progress
            Show a progress bar.
        resume
            Reuse (and keep) encoded shards of an interrupted build with the same settings.
        dask
            Encode on Dask: a scheduler address, or ``local:N`` for N local workers.
        runner
            Encode the default dense channel with this
            :class:`~densa.index.encoding.BatchRunner` (overrides ``dask``).
        expected
            How many documents to expect (the progress bar's total, for an ETA).
        """
        path = Path(path)
        _check_target(path, overwrite)
        configs = _configs(channels, encoder, vectors, bm25)
        start = time.perf_counter()
        docs = _Peekable(documents)
        kinds = {name: registry.get(c.kind).from_config(c, docs.texts) for name, c in configs.items()}
        records = {name: ChannelRecord(configs[name].kind, kind.settings()) for name, kind in kinds.items()}
        return cls._build(
            path,
            docs,
            kinds,
            records,
            chunking,
            start,
            batch_size=batch_size,
            progress=progress,
            resume=resume,
            dask=dask,
            runner=runner,
            expected=expected,
        )

    def build_like(self, documents: Iterable[Document], path: str | Path) -> Index:
        """A new index of ``documents`` at ``path`` (which must not hold one) with this index's
        channels and chunking; dense channels keep their loaded encoders and go into exact
        FAISS flat. A side index to try something on: :mod:`densa.search.calibrate` measures
        each channel on pseudo-queries in one."""
        path = Path(path)
        _check_target(path, overwrite=False)
        kinds = {
            name: kind.with_vectors(VectorIndexConfig()) if isinstance(kind, DenseKind) else kind
            for name, kind in self.snapshot.kinds.items()
        }
        records = {
            name: ChannelRecord(self.channels[name].kind, kind.settings()) for name, kind in kinds.items()
        }
        return type(self)._build(
            path,
            _Peekable(documents),
            kinds,
            records,
            self.manifest.chunking,
            time.perf_counter(),
            resume=False,
        )

    @classmethod
    def _build(
        cls,
        path: Path,
        docs: _Peekable,
        kinds: Mapping[str, Any],
        records: Mapping[str, ChannelRecord],
        chunking: ChunkConfig | None,
        start: float,
        *,
        batch_size: int = 2048,
        progress: bool = False,
        resume: bool = True,
        dask: str | None = None,
        runner: Any = None,
        expected: int | None = None,
    ) -> Index:
        chunker = chunker_for(kinds, chunking)
        signature = {
            "channels": {n: r.to_dict() for n, r in records.items()},
            "chunking": chunking,
            "batch_size": batch_size,
        }
        created_dir = not path.exists()
        try:
            with ExitStack() as stack, _progress_bar(progress, "indexing", expected) as bar:
                runners = _runners(stack, kinds, dask, runner)
                current = stack.enter_context(write_lock(path))
                number = current.next_segment if current is not None else 1

                def job(name: str) -> BuildJob:
                    resume_dir = path / BUILD_DIR / name if resume else None
                    return BuildJob(
                        resume_dir=resume_dir, signature=_jsonable(signature), runner=runners.get(name)
                    )

                source = SegmentSource(f"seg-{number:06d}", 0, 0)
                segment = write_segment(
                    path, source, docs, kinds, chunker, batch_size=batch_size, jobs=job, progress=bar
                )
                if not segment.rows:
                    shutil.rmtree(path / SEGMENTS_DIR / segment.name, ignore_errors=True)
                    raise DensaError("no documents to index")
                manifest = Manifest(
                    generation=current.generation + 1 if current is not None else 1,
                    channels=dict(records),
                    segments=(segment,),
                    chunking=chunking,
                    next_row=segment.rows,
                    next_passage=segment.passages,
                    next_segment=number + 1,
                )
                commit(path, manifest)
        except BaseException:
            nothing_kept = not any((path / BUILD_DIR).rglob("shard-*"))
            if created_dir and path.exists() and not (path / MANIFEST).exists() and nothing_kept:
                shutil.rmtree(path, ignore_errors=True)
            raise
        shutil.rmtree(path / BUILD_DIR, ignore_errors=True)
        opened = cls._open(path, OpenOptions(), kinds)
        notes = tuple(note for kind in kinds.values() for note in getattr(kind, "notes", ()))
        opened.build_stats = BuildStats(
            segment.rows, segment.passages, _truncated(segment.parts), time.perf_counter() - start, notes
        )
        return opened

    # ------------------------------------------------------------------- open
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        encoder: Encoder | None = None,
        model: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        backend: Backend | Literal["auto"] | None = None,
    ) -> Index:
        """Open an index folder on its current generation.

        Parameters
        ----------
        encoder
            Encode the default dense channel's queries with this encoder; it must match the
            one the index was built with.
        model
            Load the default dense channel's encoder from this folder instead of the recorded
            one (it must be the same model, e.g. moved); a different model raises
            :class:`~densa.errors.IndexMismatchError`.
        device, batch_size
            Options for the encoders loaded from the manifest.
        backend
            Encode queries on this backend instead of the one the index was built with
            (e.g. ``openvino`` for lower latency); the vectors it makes are checked to be
            the same model's, not compared value by value. ``openvino-int8`` is calibrated
            on the index's first stored documents if the model never was. ``auto``: the
            fastest backend that keeps quality (see
            :func:`densa.index.channels.dense.query_backend`). Added documents are encoded
            as the index's own backend encodes them (an fp32 torch index: by the model's
            exported fp32 graph when it is cached, which needs no torch).
        """
        path = Path(path)
        options = OpenOptions(
            encoder=encoder,
            model=model,
            device=device,
            batch_size=batch_size,
            backend=backend,
            calibration=lambda: _stored_texts(path),
        )
        return cls._open(path, options, {})

    @classmethod
    def _open(
        cls,
        path: Path,
        options: OpenOptions,
        kinds: Mapping[str, ChannelKind],
        readers: Mapping[str, Any] | None = None,
        previous: Mapping[str, ChannelRecord] | None = None,
    ) -> Index:
        manifest, lease = acquire(path)
        try:
            resolved = _resolve_kinds(manifest.channels, options, kinds, previous)
            snapshot = Snapshot(path, manifest, lease, resolved, readers)
        except BaseException:
            lease.release()
            raise
        return cls(path, snapshot, options)

    def _reopen(
        self,
        kinds: Mapping[str, ChannelKind] | None = None,
        records: Mapping[str, ChannelRecord] | None = None,
    ) -> Index:
        """The current generation, sharing this snapshot's open segments and loaded models."""
        return Index._open(
            self.path,
            self._options,
            kinds if kinds is not None else self.snapshot.kinds,
            self.snapshot.readers,
            records if records is not None else self.manifest.channels,
        )

    def refresh(self) -> Index:
        """This index if it is still the current generation, else a new :class:`Index` on the
        current one (sharing unchanged segments); e.g. after another process wrote to it."""
        if Manifest.read(self.path).generation == self.manifest.generation:
            return self
        return self._reopen()

    # ------------------------------------------------------------------ state
    @property
    def manifest(self) -> Manifest:
        return self.snapshot.manifest

    @property
    def channels(self) -> Mapping[str, ChannelRecord]:
        """Channel name -> its kind and settings, in manifest order."""
        return self.manifest.channels

    def kind(self, name: str) -> ChannelKind:
        if name not in self.snapshot.kinds:
            raise DensaError(f"no channel {name!r} in {self.path} (channels: {', '.join(self.channels)})")
        return self.snapshot.kinds[name]

    def channel(self, name: str) -> Channel:
        """Channel ``name``'s searcher over this generation."""
        return self.snapshot.channel(name)

    @property
    def default_dense(self) -> str:
        name = _default_dense(self.channels)
        if name is None:
            raise DensaError(f"{self.path} has no dense channel (channels: {', '.join(self.channels)})")
        return name

    def dense_kind(self, name: str | None = None) -> DenseKind:
        """Dense channel ``name``'s kind (default: the default dense channel)."""
        kind = self.kind(name or self.default_dense)
        if not isinstance(kind, DenseKind):
            raise DensaError(f"channel {name!r} of {self.path} is not a dense channel")
        return kind

    @property
    def encoder(self) -> Encoder:
        """The default dense channel's document encoder (its build backend), loaded on first use."""
        return self.dense_kind().encoder

    @property
    def query_encoder(self) -> Encoder:
        """The default dense channel's query encoder (the backend the index was opened with)."""
        return self.dense_kind().query_encoder

    def use_encoder(self, encoder: Encoder | None = None, *, queries: Encoder | None = None) -> None:
        """Encode the default dense channel's documents with ``encoder`` and its queries with
        ``queries`` (default: ``encoder``) from now on, e.g. wrapped in a lock; the index's model."""
        self.dense_kind().use_encoder(encoder, queries=queries)

    def calibration_texts(self) -> list[str]:
        """The first stored documents' texts: what calibrates ``openvino-int8`` for queries on
        an index built with another backend."""
        return self.snapshot.first_texts(CALIBRATION_TEXTS)

    def close(self) -> None:
        self.snapshot.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.manifest.documents

    def get(self, doc_id: str) -> Document | None:
        """The live document with this id, or ``None``."""
        return self.snapshot.get(doc_id)

    def taken(self, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` of live documents (``read_corpus(..., taken=index.taken)``
        reports a colliding document at its input line, before anything is encoded)."""
        return set(self.snapshot.locate(ids))

    def check(self) -> dict[str, Any]:
        """Open every channel's part in every segment (each checks its size against the
        segment's documents or passages, raising :class:`DensaError` on a mismatch) and return
        the live counts: ``documents``, ``passages``, ``segments`` and per channel its units."""
        units = {}
        for name in self.channels:
            self.channel(name)
            unit = self.kind(name).unit
            units[name] = self.manifest.passages if unit == "passage" else self.manifest.documents
        return {
            "documents": self.manifest.documents,
            "passages": self.manifest.passages,
            "segments": len(self.manifest.segments),
            "channels": units,
        }

    def info(self) -> dict[str, Any]:
        """The manifest plus sizes, as shown by ``densa info``."""
        data = self.manifest.to_dict()
        data["path"] = str(self.path)
        data["bytes"] = {
            "store": sum(s.store_bytes for s in self.manifest.segments),
            **{name: self.manifest.channel_stat(name, "bytes") for name in self.channels},
            "on_disk": dir_bytes(self.path),
        }
        return data

    # ---------------------------------------------------------------- updates
    @contextmanager
    def _writing(self) -> Iterator[tuple[Manifest, Snapshot]]:
        """The writer lock, and a snapshot of the current generation (which may be newer than
        this object's) whose readers the reopened index reuses."""
        with write_lock(self.path) as current:
            if current is None:
                raise DensaError(f"{self.path} is not a densa index any more")
            kinds = _resolve_kinds(
                current.channels, self._options, self.snapshot.kinds, self.manifest.channels
            )
            working = Snapshot(self.path, current, None, kinds, self.snapshot.readers)
            try:
                yield current, working
            finally:
                working.close()

    def add(
        self,
        documents: Iterable[Document],
        *,
        batch_size: int = 2048,
        progress: bool = False,
        merge: bool = True,
        expected: int | None = None,
    ) -> Index:
        """Add documents as one new segment (every channel) and return the updated index.

        An id that is already live in the index is an error and changes nothing. With
        ``merge``, small segments are then merged as :class:`MergePolicy` says.
        """
        start = time.perf_counter()
        with self._writing() as (current, working), _progress_bar(progress, "adding", expected) as bar:
            source = SegmentSource(
                f"seg-{current.next_segment:06d}", current.next_row, current.next_passage, working.locate
            )
            chunker = chunker_for(working.kinds, current.chunking)
            segment = write_segment(
                self.path,
                source,
                documents,
                working.kinds,
                chunker,
                batch_size=batch_size,
                jobs=lambda name: BuildJob(bulk=False),
                progress=bar,
            )
            if not segment.rows:
                shutil.rmtree(self.path / SEGMENTS_DIR / segment.name, ignore_errors=True)
            else:
                manifest = commit(
                    self.path,
                    current.evolve(
                        segments=(*current.segments, segment),
                        next_row=current.next_row + segment.rows,
                        next_passage=current.next_passage + segment.passages,
                        next_segment=current.next_segment + 1,
                    ),
                )
                if merge:
                    self._merge_while_needed(manifest, working, MergePolicy())
        updated = self._reopen()
        updated.build_stats = BuildStats(
            segment.rows, segment.passages, _truncated(segment.parts), time.perf_counter() - start
        )
        return updated

    def delete(self, ids: Sequence[str], *, merge: bool = True) -> Index:
        """Delete documents by id (tombstones) and return the updated index; an unknown id is
        an error and changes nothing."""
        if isinstance(ids, str):
            ids = [ids]
        with self._writing() as (current, working):
            manifest = commit(self.path, delete_documents(self.path, current, working.readers, ids))
            if merge:
                self._merge_while_needed(manifest, working, MergePolicy())
        return self._reopen()

    def optimize(self) -> Index:
        """Merge every segment into one, without deleted documents, each channel's part of its
        configured kind (``densa optimize``)."""
        with self._writing() as (current, working):
            if (
                len(current.segments) > 1
                or any(s.deleted for s in current.segments)
                or _has_delta_parts(current)
            ):
                self._merge(current, working, [s.name for s in current.segments], bulk=True)
        return self._reopen()

    def _merge(self, manifest: Manifest, working: Snapshot, names: list[str], *, bulk: bool) -> Manifest:
        merged = merge_segments(self.path, manifest, working.readers, working.kinds, names, bulk=bulk)
        return commit(self.path, merged)

    def _merge_while_needed(self, manifest: Manifest, working: Snapshot, policy: MergePolicy) -> None:
        while (names := policy.find_merge(manifest.segments)) is not None:
            step = Snapshot(self.path, manifest, None, working.kinds, working.readers)  # + the new segments
            try:
                manifest = self._merge(manifest, step, names, bulk=False)
            finally:
                step.close()

    def add_channel(
        self, name: str, config: Any, *, batch_size: int = 2048, progress: bool = False, resume: bool = True
    ) -> Index:
        """Add channel ``name`` (any registered kind's config) to every segment, from the stored
        texts, without touching the other channels; returns the updated index."""
        check_channel_name(name)
        if name in Manifest.read(self.path).channels:
            raise ConflictError(f"{self.path} already has a channel named {name!r}")
        start = time.perf_counter()
        kind = registry.get(config.kind).from_config(config, self.calibration_texts)
        record = ChannelRecord(config.kind, kind.settings())
        signature = {
            "channel": record.to_dict(),
            "chunking": self.manifest.chunking,
            "batch_size": batch_size,
        }
        with (
            self._writing() as (current, working),
            _progress_bar(progress, f"adding channel {name}", self.manifest.documents) as bar,
        ):
            if name in current.channels:
                raise ConflictError(f"{self.path} already has a channel named {name!r}")

            def job(part: str) -> BuildJob:
                folder = self.path / BUILD_DIR / f"add-channel-{part}" if resume else None
                return BuildJob(resume_dir=folder, signature=_jsonable(signature))

            stats = write_channel_parts(
                self.path, current, working.readers, name, kind, job, batch_size=batch_size, progress=bar
            )
            segments = tuple(replace(s, parts={**s.parts, name: stats[s.name]}) for s in current.segments)
            commit(self.path, current.evolve(channels={**current.channels, name: record}, segments=segments))
        shutil.rmtree(self.path / BUILD_DIR, ignore_errors=True)
        updated = self._reopen({**self.snapshot.kinds, name: kind}, {**self.channels, name: record})
        updated.build_stats = BuildStats(
            current.documents,
            current.passages,
            _truncated(stats.values()),
            time.perf_counter() - start,
            tuple(getattr(kind, "notes", ())),
        )
        return updated

    def copy_channel(
        self, source: str, name: str, vectors: VectorIndexConfig, *, progress: bool = False
    ) -> Index:
        """Add channel ``name``: dense channel ``source``'s vectors, read back from its parts (not
        re-encoded), kept in another FAISS kind or in an engine (``densa export``); the same
        encoder searches both. Returns the updated index."""
        check_channel_name(name)
        kind = self.dense_kind(source).with_vectors(vectors)
        record = ChannelRecord("dense", kind.settings())
        with (
            self._writing() as (current, _),
            _progress_bar(progress, f"copying {source} to {name}", self.manifest.documents) as bar,
        ):
            if name in current.channels:
                raise ConflictError(f"{self.path} already has a channel named {name!r}")
            if source not in current.channels:
                raise NotFoundError(f"{self.path} has no channel named {source!r}")
            stats = copy_channel_parts(self.path, current, source, name, kind, progress=bar)
            segments = tuple(replace(s, parts={**s.parts, name: stats[s.name]}) for s in current.segments)
            commit(self.path, current.evolve(channels={**current.channels, name: record}, segments=segments))
        return self._reopen({**self.snapshot.kinds, name: kind}, {**self.channels, name: record})


# ------------------------------------------------------------------------ helpers
class _Peekable:
    """Documents to index, whose first ones can be looked at (``texts``) before indexing
    starts, read only if someone asks (a crash in them then happens before any work)."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self._it = iter(documents)
        self._head: list[Document] | None = None

    def texts(self) -> list[str]:
        if self._head is None:
            self._head = list(islice(self._it, CALIBRATION_TEXTS))
        return [d.full_text for d in self._head]

    def __iter__(self) -> Iterator[Document]:
        yield from self._head or ()
        yield from self._it


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise DensaError(f"{path} exists and is not a folder; choose an empty or new folder")
    if (path / MANIFEST).exists() and not overwrite:
        raise DensaError(
            f"an index already exists at {path}; pass overwrite=True (--overwrite) to replace it"
        )
    leftovers = {
        BUILD_DIR,
        LOCK_FILE,
        SEGMENTS_DIR,
        "commits",
        ENGINES_DIR,
    }  # an interrupted build leaves these
    if (
        path.exists()
        and not (path / MANIFEST).exists()
        and any(p.name not in leftovers for p in path.iterdir())
    ):
        raise DensaError(f"{path} exists and is not a densa index; choose an empty or new folder")


def _resolve_kinds(
    records: Mapping[str, ChannelRecord],
    options: OpenOptions,
    known: Mapping[str, ChannelKind],
    previous: Mapping[str, ChannelRecord] | None,
) -> dict[str, ChannelKind]:
    """A kind per channel: the already loaded one when its record is unchanged (keeps its
    loaded model), else rebuilt from the manifest; ``options.encoder`` and ``options.model``
    serve the default dense channel and every other dense channel of the same model."""
    default = _default_dense(records)
    if options.encoder is not None and default is None:
        raise DensaError("an encoder was given but the index has no dense channel")
    out: dict[str, ChannelKind] = {}
    for name, record in records.items():
        if name in known and (previous is None or previous.get(name) == record):
            out[name] = known[name]
            continue
        # a given encoder (or model folder) serves every dense channel of the default's model
        mine = (
            options if _same_model(record, records, default) else replace(options, encoder=None, model=None)
        )
        out[name] = registry.get(record.kind).from_settings(record.settings, mine)
    dense = [k for k in out.values() if isinstance(k, DenseKind)]
    for i, kind in enumerate(dense):  # channels of one model load it once, in the first of them
        for first in dense[:i]:
            if kind.share_models(first):
                break
    return out


def _same_model(record: ChannelRecord, records: Mapping[str, ChannelRecord], default: str | None) -> bool:
    def model(r: ChannelRecord) -> Any:
        encoder = r.settings.get("encoder") if r.kind == "dense" else None
        return (
            (encoder.get("fingerprint"), encoder.get("query_fingerprint"))
            if isinstance(encoder, dict)
            else None
        )

    return default is not None and model(record) is not None and model(record) == model(records[default])


def _runners(
    stack: ExitStack, kinds: Mapping[str, ChannelKind], dask: str | None, runner: Any
) -> dict[str, Any]:
    default = next((n for n, k in kinds.items() if isinstance(k, DenseKind)), None)
    if runner is not None and default is not None:
        return {default: runner}
    if dask is None:
        return {}
    return {
        name: stack.enter_context(kind.runner(dask))
        for name, kind in kinds.items()
        if isinstance(kind, _Distributable)
    }


@contextmanager
def _progress_bar(show: bool, what: str, total: int | None = None) -> Iterator[Any]:
    from tqdm.auto import tqdm

    with tqdm(desc=what, unit="doc", total=total, disable=not show, dynamic_ncols=True) as bar:
        yield bar.update


def _truncated(parts: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]) -> int:
    values = parts.values() if isinstance(parts, Mapping) else parts
    return sum(int(p.get("truncated", 0)) for p in values)


def _has_delta_parts(manifest: Manifest) -> bool:
    """Whether some dense part is stored exactly because it was small (an update's segment)."""
    for segment in manifest.segments:
        for name, stats in segment.parts.items():
            configured = manifest.channels[name].settings.get("vectors", {}).get("kind")
            if configured is not None and stats.get("kind") not in (None, configured):
                return True
    return False


def _jsonable(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _stored_texts(path: Path) -> list[str]:
    manifest, lease = acquire(path)
    snapshot = Snapshot(path, manifest, lease, {})
    try:
        return snapshot.first_texts(CALIBRATION_TEXTS)
    finally:
        snapshot.close()
