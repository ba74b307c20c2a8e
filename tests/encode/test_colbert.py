"""ColBERT checkpoints in the two folder formats in use (PyLate's and Stanford colbert-ai's),
built by hand from a tiny BERT, load and encode exactly as the paper's recipe computed by hand:
marker after [CLS], queries padded with [MASK], punctuation dropped, projection, L2 norm."""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from densa.encode.colbert import ColbertEncoder, is_colbert_model


def _pylate(tiny_bert: Path, folder: Path) -> torch.Tensor:
    shutil.copytree(tiny_bert, folder)
    (folder / "1_Dense").mkdir()
    weight = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    save_file({"linear.weight": weight}, str(folder / "1_Dense" / "model.safetensors"))
    dense = {"in_features": 32, "out_features": 16, "bias": False, "use_residual": False}
    dense["activation_function"] = "torch.nn.modules.linear.Identity"
    (folder / "1_Dense" / "config.json").write_text(json.dumps(dense))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 47}))
    settings = {
        "model_type": "ColBERT",
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 16,
        "document_length": 48,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
        "do_query_expansion": True,
    }
    (folder / "config_sentence_transformers.json").write_text(json.dumps(settings))
    return weight


def _stanford(tiny_bert: Path, folder: Path) -> torch.Tensor:
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_bert / name).is_file():
            shutil.copy(tiny_bert / name, folder / name)
    config = json.loads((tiny_bert / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["HF_ColBERT"]}))
    weights = {f"bert.{k}": v for k, v in load_file(str(tiny_bert / "model.safetensors")).items()}
    weight = torch.randn(16, 32, generator=torch.Generator().manual_seed(1))
    save_file({**weights, "linear.weight": weight}, str(folder / "model.safetensors"))
    metadata = {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 16,
        "doc_maxlen": 48,
    }
    (folder / "artifact.metadata").write_text(json.dumps({**metadata, "dim": 16, "mask_punctuation": True}))
    return weight


@pytest.mark.parametrize("build", [_pylate, _stanford], ids=["pylate", "stanford"])
def test_checkpoint_formats_encode_as_computed_by_hand(
    build: object, tiny_bert: Path, tmp_path: Path
) -> None:
    from transformers import BertModel

    folder = tmp_path / "colbert"
    weight = build(tiny_bert, folder)  # type: ignore[operator]
    assert is_colbert_model(folder) and not is_colbert_model(tiny_bert)
    encoder = ColbertEncoder(str(folder), device="cpu")
    assert encoder.spec.dim == 16 and encoder.spec.document_length == 48
    assert encoder.encode_queries(["heart?"]).lengths.tolist() == [16]  # [MASK]-expanded
    document = encoder.encode_documents(["heart, lungs."])
    tokens = ["[CLS]", "[unused1]", "heart", ",", "lungs", ".", "[SEP]"]
    ids = encoder.tokenizer.convert_tokens_to_ids(tokens)
    bert = BertModel.from_pretrained(str(tiny_bert)).eval()
    with torch.no_grad():
        hidden = bert(torch.tensor([ids])).last_hidden_state[0]
    by_hand = torch.nn.functional.normalize(hidden @ weight.T, dim=-1).numpy()
    kept = [i for i, t in enumerate(tokens) if t not in string.punctuation]
    np.testing.assert_allclose(document.vectors, by_hand[kept], atol=1e-4)
