from __future__ import annotations

from pathlib import Path

import pytest

from densa.encode import EncoderConfig
from densa.errors import ConfigError
from densa.index import BM25Config, DenseChannel, Index, VectorIndexConfig
from densa.search import SearchConfig, Searcher
from densa.train import TrainConfig
from densa.train.adapt import AdaptConfig, adapt, pseudo_examples
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
