"""Bi-encoder and cross-encoder training on a tiny random BERT and a few dozen pairs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from densa.encode import EncoderConfig, SentenceTransformerEncoder, load_sentence_transformer
from densa.errors import ConfigError
from densa.index import Index
from densa.train import (
    InfoNCELoss,
    Passage,
    RerankerConfig,
    TrainConfig,
    TrainingExample,
    build_dataset,
    infonce_logits,
    train_bi_encoder,
    train_reranker,
)
from densa.types import Document

TOPICS = [
    "volcano",
    "bread",
    "chess",
    "octopus",
    "inflation",
    "comet",
    "violin",
    "glacier",
    "tennis",
    "orchid",
    "satellite",
    "cheese",
    "python",
    "falcon",
    "tsunami",
    "marathon",
    "saffron",
    "quartz",
    "sonar",
    "tundra",
    "opera",
    "pepper",
    "rugby",
    "yeast",
]


def _examples() -> list[TrainingExample]:
    out = []
    for i, topic in enumerate(TOPICS):
        other = TOPICS[(i + 1) % len(TOPICS)]
        out.append(
            TrainingExample(
                question=f"tell me about the {topic}",
                positives=(Passage(f"an article on the {topic} and its {topic} facts", f"{topic}", f"p{i}"),),
                hard_negatives=(Passage(f"an article on the {other} and more", f"{other} notes", f"n{i}"),),
                id=f"q{i}",
            )
        )
    return out


class FixedModel(torch.nn.Module):
    """Returns the embedding stored under each feature dict's ``"x"``."""

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"sentence_embedding": features["x"]}


def test_in_batch_logits_have_shape_b_by_b_times_one_plus_h() -> None:
    b, h, d = 4, 2, 8
    torch.manual_seed(0)
    queries, positives = torch.randn(b, d), torch.randn(b, d)
    negatives = [torch.randn(b, d) for _ in range(h)]
    logits = infonce_logits(queries, torch.cat([positives, *negatives]), temperature=0.1)
    assert logits.shape == (b, b * (1 + h))
    cos = torch.nn.functional.cosine_similarity(queries[2], positives[2], dim=0)
    assert logits[2, 2] == pytest.approx(float(cos / 0.1), abs=1e-5)  # positive of query i at column i
    loss = InfoNCELoss(FixedModel(), temperature=0.1)(
        [{"x": queries}, {"x": positives}] + [{"x": n} for n in negatives]
    )
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(b))
    assert float(loss) == pytest.approx(float(expected), abs=1e-6)


def test_dataset_rows_pair_each_positive_with_hard_negatives() -> None:
    columns = build_dataset(_examples()[:3], hard_negatives=2, seed=0)
    assert list(columns) == ["query", "positive", "negative_1", "negative_2"]
    assert len(columns["query"]) == 3
    assert columns["negative_1"][0] == "volcano notes an article on the bread and more".replace(
        "volcano", "bread", 1
    )
    for row in range(3):
        assert columns["positive"][row] not in (columns["negative_1"][row], columns["negative_2"][row])


def test_gradient_caching_gives_the_same_gradients(tiny_bert: Path) -> None:
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    model = load_sentence_transformer(tiny_bert, "mean", 64, "cpu")
    model.eval()  # no dropout, so both losses see identical forward passes
    columns = build_dataset(_examples()[:6], hard_negatives=1, seed=0)
    features = [model.tokenize(columns[c]) for c in ("query", "positive", "negative_1")]

    def grads(loss_fn: torch.nn.Module) -> list[torch.Tensor]:
        model.zero_grad()
        loss = loss_fn([dict(f) for f in features], None)
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads(InfoNCELoss(model, temperature=0.05))
    cached = grads(CachedMultipleNegativesRankingLoss(model, scale=20.0, mini_batch_size=2))
    assert len(plain) == len(cached) > 0
    for a, b in zip(plain, cached, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_loss_goes_down_and_the_model_loads_everywhere(tmp_path: Path, tiny_bert: Path) -> None:
    config = TrainConfig(
        base=str(tiny_bert),
        pooling="mean",
        batch_size=8,
        max_steps=30,
        learning_rate=1e-3,
        logging_steps=5,
        eval_steps=15,
        save_steps=15,
        dev_fraction=0.2,
        max_length=32,
    )
    result = train_bi_encoder(_examples(), tmp_path / "model", config, progress=False)
    losses = [e["loss"] for e in result.history if "loss" in e]
    assert len(losses) >= 4 and losses[-1] < losses[0] * 0.8
    assert result.dev_ndcg is not None
    assert (tmp_path / "model" / "training.png").stat().st_size > 1000
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    encoder = SentenceTransformerEncoder(EncoderConfig(model=str(tmp_path / "model")))
    np.testing.assert_allclose(
        encoder.encode_documents(["volcano"]), plain.encode(["volcano"], normalize_embeddings=True), atol=1e-5
    )
    index = Index.build(
        [Document("a", "volcano facts"), Document("b", "bread facts")], tmp_path / "idx", encoder=encoder
    )
    assert len(index) == 2


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(tmp_path: Path, tiny_bert: Path) -> None:
    base = dict(
        base=str(tiny_bert),
        pooling="mean",
        batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        save_steps=4,
        eval_steps=100,
        dev_fraction=0.0,
        max_length=32,
    )
    first = train_bi_encoder(_examples(), tmp_path / "m", TrainConfig(max_steps=4, **base), progress=False)  # type: ignore[arg-type]
    assert first.steps == 4 and (tmp_path / "m" / "checkpoints" / "checkpoint-4").is_dir()
    second = train_bi_encoder(_examples(), tmp_path / "m", TrainConfig(max_steps=6, **base), progress=False)  # type: ignore[arg-type]
    assert second.steps == 6
    logged = [e["step"] for e in second.history if "loss" in e]
    assert logged == [1, 2, 3, 4, 5, 6]  # steps 1-4 restored from the checkpoint, 5-6 new


@pytest.mark.slow
def test_separate_towers_train_end_to_end(tmp_path: Path, tiny_bert: Path) -> None:
    config = TrainConfig(
        base=str(tiny_bert),
        pooling="mean",
        separate_towers=True,
        batch_size=8,
        max_steps=6,
        learning_rate=1e-3,
        dev_fraction=0.0,
        max_length=32,
        save_steps=100,
    )
    train_bi_encoder(_examples(), tmp_path / "towers", config, progress=False)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tmp_path / "towers"), device="cpu")
    q = model.encode_query(["volcano facts"])
    d = model.encode_document(["volcano facts"])
    assert not np.allclose(q, d)  # two different towers
    encoder = SentenceTransformerEncoder(EncoderConfig(model=str(tmp_path / "towers")))
    np.testing.assert_allclose(
        encoder.encode_queries(["volcano facts"])[0], q[0] / np.linalg.norm(q[0]), atol=1e-5
    )


@pytest.mark.slow
def test_reranker_training_produces_a_cross_encoder(tmp_path: Path, tiny_bert: Path) -> None:
    from densa.rerank import CrossEncoderReranker

    config = RerankerConfig(
        base=str(tiny_bert),
        loss="bce",
        batch_size=8,
        max_steps=6,
        dev_fraction=0.2,
        eval_steps=3,
        save_steps=100,
        max_length=32,
        logging_steps=2,
    )
    out = train_reranker(_examples(), tmp_path / "ce", config, progress=False)
    reranker = CrossEncoderReranker(out, device="cpu")
    scores = reranker.score(
        [("tell me about the volcano", "volcano facts"), ("tell me about the volcano", "bread")]
    )
    assert len(scores) == 2 and scores[0] != scores[1]


def test_listwise_reranker_rows_have_every_negative_column() -> None:
    from densa.train.cross_encoder import _tuples

    examples = _examples()[:3]
    two_positives = TrainingExample("q", (Passage("a"), Passage("b")), (Passage("own"),), id="x")
    columns = _tuples([*examples, two_positives], negatives=3, seed=0)
    assert list(columns) == ["query", "positive", "negative_1", "negative_2", "negative_3"]
    assert columns["positive"] == [e.positives[0].full_text for e in examples] + ["a", "b"]
    own = [e.hard_negatives[0].full_text for e in examples]
    assert columns["negative_1"] == [*own, "own", "own"]  # a question's own hard negative comes first
    pool = {*own, "own"}
    for column in ("negative_2", "negative_3"):  # topped up from other questions' negatives
        assert len(columns[column]) == 5 and set(columns[column]) <= pool
    with pytest.raises(ConfigError, match="too few hard negatives"):
        _tuples([two_positives], negatives=2, seed=0)


def test_distillation_lists_keep_the_teachers_order_with_the_positive_first() -> None:
    from densa.train.cross_encoder import _teacher_lists

    negatives = (Passage("n1", score=9.0), Passage("n2", score=5.0), Passage("n3", score=7.0))
    example = TrainingExample("q", (Passage("a"), Passage("b")), negatives, id="x")
    columns = _teacher_lists([example], negatives=3, temperature=0.5)
    assert columns["query"] == ["q", "q"]
    assert columns["docs"] == [["a", "n1", "n2", "n3"], ["b", "n1", "n2", "n3"]]
    labels = np.array(columns["labels"][0]) * 0.5  # undo the temperature: z-scores, positive + 1
    z = (np.array([9.0, 5.0, 7.0]) - 7.0) / np.std([9.0, 5.0, 7.0])
    np.testing.assert_allclose(labels, [z.max() + 1.0, *z])
    (cut,) = [_teacher_lists([example], negatives=2, temperature=1.0)["docs"][0]]
    assert cut == ["a", "n1", "n2"]
    unscored = TrainingExample("q", (Passage("a"),), (Passage("n"),), id="q7")
    with pytest.raises(ConfigError, match="'q7' has a negative without one"):
        _teacher_lists([unscored], negatives=1, temperature=1.0)
    with pytest.raises(ConfigError, match="temperature"):
        RerankerConfig(loss="distill", temperature=0.0)


@pytest.mark.slow
def test_distilled_reranker_learns_the_teachers_order(tmp_path: Path, tiny_bert: Path) -> None:
    from densa.rerank import CrossEncoderReranker

    examples = [
        TrainingExample(
            e.question,
            (replace(e.positives[0], score=2.0),),
            (replace(e.hard_negatives[0], score=1.0), Passage("unrelated words here", score=-3.0)),
            id=e.id,
        )
        for e in _examples()
    ]
    config = RerankerConfig(
        base=str(tiny_bert),
        loss="distill",
        batch_size=8,
        max_steps=60,
        learning_rate=3e-3,
        negatives_per_question=2,
        dev_fraction=0.0,
        save_steps=100,
        max_length=32,
        logging_steps=5,
    )
    out = train_reranker(examples, tmp_path / "ce", config, progress=False)
    history = json.loads((out / "densa_training.json").read_text())["history"]
    losses = [e["loss"] for e in history if "loss" in e]
    assert losses[-1] < losses[0]
    reranker = CrossEncoderReranker(out, device="cpu")
    wins = 0
    for example in examples:
        texts = [p.full_text for p in (*example.positives, *example.hard_negatives)]
        scores = reranker.score([(example.question, t) for t in texts])
        wins += scores[0] > scores[1] > scores[2]
    assert wins >= 0.8 * len(TOPICS)


@pytest.mark.slow
def test_listwise_reranker_loss_goes_down_and_ranks_training_positives_first(
    tmp_path: Path, tiny_bert: Path
) -> None:
    from densa.rerank import CrossEncoderReranker

    config = RerankerConfig(
        base=str(tiny_bert),
        batch_size=8,
        max_steps=60,
        learning_rate=3e-3,  # a tiny random BERT needs a large step to leave the constant predictor
        negatives_per_question=1,
        in_batch_negatives=2,
        dev_fraction=0.0,
        save_steps=100,
        max_length=32,
        logging_steps=5,
    )
    out = train_reranker(_examples(), tmp_path / "ce", config, progress=False)
    history = json.loads((out / "densa_training.json").read_text())["history"]
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) >= 6 and losses[-1] < losses[0] * 0.5
    reranker = CrossEncoderReranker(out, device="cpu")
    wins = 0
    for example in _examples():
        positive, negative = reranker.score(
            [(example.question, p.full_text) for p in (*example.positives, *example.hard_negatives)]
        )
        wins += positive > negative
    assert wins >= 0.9 * len(TOPICS)


@pytest.mark.slow
def test_reranker_dev_questions_without_negatives_do_not_break_training(
    tmp_path: Path, tiny_bert: Path
) -> None:
    examples = [
        e if i % 2 else TrainingExample(e.question, e.positives, (), id=e.id)
        for i, e in enumerate(_examples())
    ]
    config = RerankerConfig(
        base=str(tiny_bert),
        batch_size=8,
        max_steps=2,
        dev_fraction=0.5,
        eval_steps=1,
        save_steps=100,
        max_length=32,
    )
    out = train_reranker(examples, tmp_path / "ce", config, progress=False)
    assert (out / "config.json").is_file()


@pytest.mark.slow
def test_matryoshka_training_gives_a_model_usable_at_fewer_dimensions(
    tmp_path: Path, tiny_bert: Path
) -> None:
    config = TrainConfig(
        base=str(tiny_bert),
        pooling="mean",
        batch_size=8,
        max_steps=3,
        learning_rate=1e-3,
        dev_fraction=0.0,
        max_length=32,
        save_steps=100,
        matryoshka_dims=(32, 16, 8),
    )
    result = train_bi_encoder(_examples(), tmp_path / "mat", config, progress=False)
    assert result.steps == 3 and all(e["loss"] > 0 for e in result.history if "loss" in e)
    small = SentenceTransformerEncoder(EncoderConfig(model=str(tmp_path / "mat"), dim=8))
    vectors = small.encode_documents(["volcano facts", "bread facts"])
    assert vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_keep_best_saves_the_checkpoint_best_on_dev(tmp_path: Path, tiny_bert: Path) -> None:
    from safetensors.numpy import load_file

    config = TrainConfig(
        base=str(tiny_bert),
        pooling="mean",
        batch_size=8,
        max_steps=20,
        learning_rate=5e-3,  # large: dev goes up and down
        logging_steps=5,
        eval_steps=5,
        save_steps=5,
        dev_fraction=0.2,
        max_length=32,
        keep_best=True,
    )
    result = train_bi_encoder(_examples(), tmp_path / "model", config, progress=False)
    dev = {
        int(e["step"]): e["eval_dev_cosine_ndcg@10"] for e in result.history if "eval_dev_cosine_ndcg@10" in e
    }
    best_step = max(dev, key=lambda step: (dev[step], -step))
    assert result.dev_ndcg == pytest.approx(dev[best_step])
    record = json.loads((tmp_path / "model" / "densa_training.json").read_text())
    assert record["kept_checkpoint"] == f"checkpoint-{best_step}"
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    kept = load_file(
        str(tmp_path / "model" / "checkpoints" / f"checkpoint-{best_step}" / "model.safetensors")
    )
    assert saved.keys() == kept.keys()
    assert all(np.array_equal(saved[name], kept[name]) for name in saved)


def test_keep_best_needs_dev_and_aligned_checkpoints() -> None:
    with pytest.raises(ConfigError, match="needs a dev split"):
        TrainConfig(keep_best=True, dev_fraction=0.0)
    with pytest.raises(ConfigError, match="multiple of eval_steps"):
        TrainConfig(keep_best=True, eval_steps=30, save_steps=50)
