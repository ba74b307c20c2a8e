from __future__ import annotations

import re
from pathlib import Path

import pytest

from densa.encode import EncoderConfig
from densa.errors import ConfigError
from densa.index import BM25Config, DenseChannel, Index, VectorIndexConfig
from densa.search import SearchConfig, Searcher
from densa.train import TrainConfig
from densa.train.adapt import AdaptConfig, adapt, keyword_pairs, pseudo_examples, title_pairs
from densa.types import Document
from tests.search.test_calibrate import _corpus


@pytest.fixture
def index(tmp_path: Path, tiny_bert: Path) -> Index:
    channels = {
        "dense": DenseChannel(EncoderConfig(model=str(tiny_bert), pooling="mean"), VectorIndexConfig()),
        "bm25": BM25Config(),
    }
    return Index.build(_corpus(120), tmp_path / "idx", channels=channels)


def test_pseudo_examples_are_confirmed_cut_sentences_with_hard_negatives(index: Index) -> None:
    config = AdaptConfig(queries=40)
    cut, examples = pseudo_examples(index, config)
    assert cut == 40 and 0 < len(examples) <= cut
    for example in examples:
        doc_id = example.positives[0].id
        doc = index.get(doc_id)
        assert doc is not None
        assert example.question in doc.text and example.question not in example.positives[0].text
        assert all(n.id != doc_id for n in example.hard_negatives)
        assert len(example.hard_negatives) == 1


def test_adapt_trains_and_adds_a_channel_beside_the_source(index: Index, tmp_path: Path) -> None:
    train = TrainConfig(
        max_steps=2, batch_size=4, dev_fraction=0.0, max_length=32, eval_steps=1000, save_steps=1000
    )
    result = adapt(index, tmp_path / "model", AdaptConfig(queries=40, train=train), progress=False)
    assert result.training.steps == 2 and result.kept > 10
    assert list(result.index.channels) == ["dense", "bm25", "adapted"]
    assert result.index.channels["dense"] == index.channels["dense"]  # the source is untouched
    assert (tmp_path / "model" / "modules.json").is_file()
    hits = Searcher(result.index, SearchConfig(mode="adapted")).hits(["shark ocean reef"], 3)[0]
    assert len(hits) == 3
    reopened = Index.open(index.path)
    assert reopened.channels["adapted"].settings["encoder"]["model"] == str((tmp_path / "model").resolve())
    with pytest.raises(ConfigError, match="already has a channel named 'adapted'"):
        adapt(reopened, tmp_path / "again", AdaptConfig(queries=40, train=train), progress=False)


def test_title_pseudo_queries_are_titles_cut_from_their_passages(tmp_path: Path, tiny_bert: Path) -> None:
    sharks = "The reef sharks number {} hunt at night in warm water and rest in caves by day near the reef."
    kelp = "Kelp forest {} grows fast. Otters eat the urchins that graze kelp {} so the forest stays tall."
    docs = [
        Document(f"t{i}", f"Sharks of reef {i}. " + sharks.format(i), f"Sharks of reef {i}.")
        if i % 2
        else Document(f"t{i}", kelp.format(i, i), f"Kelp {i}")
        for i in range(60)
    ]
    pairs = title_pairs(docs)
    assert pairs[1] == ("Sharks of reef 1.", sharks.format(1))
    assert pairs[0][0] in docs[0].text and pairs[0][0] != "Kelp 0"  # a 2-word title: a cut sentence
    channels = {
        "dense": DenseChannel(EncoderConfig(model=str(tiny_bert), pooling="mean"), VectorIndexConfig()),
        "bm25": BM25Config(),
    }
    index = Index.build(docs, tmp_path / "idx", channels=channels)
    _, examples = pseudo_examples(index, AdaptConfig(queries=40, pseudo="title"))
    titled = [e for e in examples if index.get(e.positives[0].id).title == e.question]  # type: ignore[union-attr]
    assert titled and all(e.question not in e.positives[0].full_text for e in titled)
    with pytest.raises(ConfigError, match="must be one of cloze, title, keywords"):
        AdaptConfig(pseudo="summary")  # type: ignore[arg-type]


def test_keyword_pseudo_queries_are_a_documents_distinctive_words_in_its_order() -> None:
    docs = [
        Document("a", "The otters of the kelp forest eat urchins; urchins graze the kelp.", "Otters"),
        Document("b", "The reef sharks of the forest hunt at night; the sharks rest by day."),
        Document("c", "The forest of the north is cold at night and the forest is dark."),
    ]
    pairs = keyword_pairs(docs)
    assert [p[1] for p in pairs] == [d.full_text for d in docs]  # the whole document is the positive
    for (query, _), doc in zip(pairs, docs, strict=True):
        words = query.split()
        assert 3 <= len(words) <= 5 and "the" not in words
        text = re.findall(r"\w+", doc.full_text.lower())
        assert [text.index(w) for w in words] == sorted(text.index(w) for w in words)
    assert pairs[0][0].split()[:2] == ["otters", "kelp"]  # frequent here, rare elsewhere ...
    assert "forest" not in pairs[0][0].split()[:3]  # ... unlike "forest", in every document
