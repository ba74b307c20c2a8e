"""A new kind of channel plugs in through the registry alone: a toy encoder and backend, defined
here, built into an index, searched alone and fused with BM25, updated, merged and reopened."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from densa.corpus import read_corpus
from densa.errors import DensaError
from densa.fuse import FusionConfig, fuse
from densa.index import BM25Config, DenseChannel, Index, UnitScores, registry
from densa.index.channels.base import BoolArray, BuildJob, OpenOptions, SegmentView, Unit, top_k_with_ties
from densa.types import Document, rank_items
from tests.helpers import TINY, HashingEncoder, search


# ----------------------------------------------------------------------- the toy kind
@dataclass(frozen=True)
class TrigramChannel:
    """Character trigrams hashed into ``dim`` buckets; exact search over .npy vectors."""

    kind: ClassVar[str] = "toy-trigrams"
    dim: int = 48


def _trigram_vectors(texts: Sequence[str], dim: int) -> np.ndarray:
    out = np.zeros((len(texts), dim), np.float32)
    for row, text in enumerate(texts):
        padded = f"  {text.lower()} "
        for i in range(len(padded) - 2):
            out[row, int(hashlib.md5(padded[i : i + 3].encode()).hexdigest(), 16) % dim] += 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


class _Writer:
    def __init__(self, folder: Path, dim: int) -> None:
        self.folder, self.dim, self.parts = folder, dim, [np.zeros((0, dim), np.float32)]

    def add(self, texts: Sequence[str], documents: Sequence[Document]) -> None:
        self.parts.append(_trigram_vectors(texts, self.dim))

    def finish(self) -> dict[str, Any]:
        self.folder.mkdir(parents=True)
        np.save(self.folder / "trigrams.npy", np.concatenate(self.parts))
        return {"bytes": (self.folder / "trigrams.npy").stat().st_size}


class _Search:
    def __init__(self, dim: int, segments: Sequence[SegmentView], name: str) -> None:
        self.dim, self.segments = dim, segments
        self.parts = [np.load(s.folder / name / "trigrams.npy") for s in segments]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _trigram_vectors(texts, self.dim)

    def search(
        self, queries: np.ndarray, k: int, allowed: Sequence[BoolArray | None], where: object = None
    ) -> list[UnitScores]:
        out = []
        for query in queries:
            ids, scores = [], []
            for view, vectors, mask in zip(self.segments, self.parts, allowed, strict=True):
                rows = np.arange(len(vectors)) if mask is None else np.flatnonzero(mask)
                ids.append(rows + view.first_row)
                scores.append((vectors[rows] @ query).astype(np.float32))
            out.append(top_k_with_ties(np.concatenate(ids), np.concatenate(scores), k))
        return out


class TrigramKind:
    unit: Unit = "document"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def settings(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def part_writer(self, folder: Path, job: BuildJob) -> _Writer:
        return _Writer(folder, self.dim)

    def open(self, segments: Sequence[SegmentView], name: str) -> _Search:
        return _Search(self.dim, segments, name)


class TrigramFactory:
    def from_config(self, config: TrigramChannel, sample: Callable[[], Sequence[str]]) -> TrigramKind:
        return TrigramKind(config.dim)

    def from_settings(self, settings: dict[str, Any], options: OpenOptions) -> TrigramKind:
        return TrigramKind(int(settings["dim"]))


@pytest.fixture(autouse=True)
def _registered() -> None:
    registry.register(TrigramChannel.kind, TrigramFactory(), replace=True)


# ----------------------------------------------------------------------------- tests
def _docs() -> list[Document]:
    return list(read_corpus(TINY / "corpus.jsonl"))


def _expected(docs: list[Document], query: str, k: int) -> list[tuple[str, float]]:
    scores = _trigram_vectors([d.full_text for d in docs], 48) @ _trigram_vectors([query], 48)[0]
    ranked = rank_items(zip([d.id for d in docs], scores.tolist(), strict=True))
    return [(d, round(s, 5)) for d, s in ranked[:k]]


def _toy(hits: list[Any]) -> list[tuple[str, float]]:
    return [(h.doc_id, round(h.score, 5)) for h in hits]


def test_a_registered_kind_is_built_searched_alone_and_fused(tmp_path: Path) -> None:
    channels = {"grams": TrigramChannel(), "bm25": BM25Config()}
    index = Index.build(_docs(), tmp_path / "idx", channels=channels)
    assert index.channels["grams"].kind == "toy-trigrams" and index.channels["grams"].settings == {"dim": 48}
    (alone,) = search(index, ["vulcanic eruptoins"], 3, mode="grams")  # misspelt: trigrams still match
    assert _toy(alone) == _expected(_docs(), "vulcanic eruptoins", 3) and alone[0].doc_id == "d7"
    assert search(index, ["vulcanic eruptoins"], 3, mode="bm25") == [[]]  # no word in common
    fused = search(index, ["shark surfer"], 10, mode="grams+bm25")[0]
    grams = {h.doc_id: h.score for h in search(index, ["shark surfer"], 100, mode="grams")[0]}
    keywords = {h.doc_id: h.score for h in search(index, ["shark surfer"], 100, mode="bm25")[0]}
    expected = fuse([grams, keywords], FusionConfig(), ["grams", "bm25"])
    assert [(h.doc_id, round(h.score, 6)) for h in fused] == [
        (d, round(s, 6)) for d, s in rank_items(expected.items())[:10]
    ]
    assert search(index, ["shark surfer"], 10, mode="hybrid") == [fused]  # hybrid = every channel


def test_a_registered_kind_is_added_to_an_index_updated_merged_and_reopened(tmp_path: Path) -> None:
    index = Index.build(_docs(), tmp_path / "idx", encoder=HashingEncoder())
    dense_before = search(index, ["heart attack"], 5)
    with_grams = index.add_channel("grams", TrigramChannel())
    assert list(with_grams.channels) == ["dense", "bm25", "grams"]
    assert search(with_grams, ["heart attack"], 5) == dense_before  # the other channels untouched
    extra = [Document("e1", "Eruptions of volcanoes spread ash clouds.", title="Ash")]
    updated = with_grams.add(extra).delete(["d7"])
    live = [d for d in _docs() if d.id != "d7"] + extra
    assert _toy(search(updated, ["volcanic eruptions"], 4, mode="grams")[0]) == _expected(
        live, "volcanic eruptions", 4
    )
    merged = updated.optimize()  # the toy kind cannot merge parts: rewritten from the stored texts
    assert len(merged.manifest.segments) == 1
    assert _toy(search(merged, ["volcanic eruptions"], 4, mode="grams")[0]) == _expected(
        live, "volcanic eruptions", 4
    )
    reopened = Index.open(tmp_path / "idx", encoder=HashingEncoder())
    assert _toy(search(reopened, ["volcanic eruptions"], 4, mode="grams")[0]) == _expected(
        live, "volcanic eruptions", 4
    )


def test_channel_names_and_kinds_are_checked(tmp_path: Path) -> None:
    index = Index.build(_docs(), tmp_path / "idx", encoder=HashingEncoder())
    with pytest.raises(DensaError, match="already has a channel named 'dense'"):
        index.add_channel("dense", DenseChannel(HashingEncoder()))
    with pytest.raises(DensaError, match="channel name"):
        index.add_channel("../x", TrigramChannel())
    with pytest.raises(DensaError, match="no channel kind 'nope' is registered"):
        registry.get("nope")
    with pytest.raises(DensaError, match="mode 'grams': no channel 'grams' in this index"):
        search(index, ["x"], 1, mode="grams")


def test_an_index_whose_kind_is_not_registered_says_so(tmp_path: Path) -> None:
    Index.build(_docs(), tmp_path / "idx", channels={"grams": TrigramChannel()})
    registry._FACTORIES.pop(TrigramChannel.kind)
    with pytest.raises(DensaError, match=r"no channel kind 'toy-trigrams' is registered.*import the module"):
        Index.open(tmp_path / "idx")
