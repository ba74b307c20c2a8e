from __future__ import annotations

from pathlib import Path

import pytest

from densa.encode import (
    DEFAULT_MODEL,
    EncoderConfig,
    SentenceTransformerEncoder,
    resolve_model_path,
)
from tests.helpers import TINY, HashingEncoder, build_tiny_bert


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return resolve_model_path(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEncoder:
    """The real bundled all-MiniLM-L6-v2, loaded once."""
    return SentenceTransformerEncoder(EncoderConfig(device="cpu"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), minilm_path, seed=0)


@pytest.fixture(scope="session")
def tiny_bert_other(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-other"), minilm_path, seed=1)


@pytest.fixture
def hashing() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture
def tiny_dataset() -> Path:
    return TINY
