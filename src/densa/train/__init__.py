"""Training stage (``pip install 'densa[train]'``): mine negatives, train bi- and cross-encoders."""

from densa.train.bi_encoder import TrainConfig, TrainResult, build_dataset, train_bi_encoder
from densa.train.cross_encoder import RerankerConfig, train_reranker
from densa.train.data import Passage, TrainingExample, read_dpr, split_dev, write_dpr
from densa.train.infonce import InfoNCELoss, infonce_logits
from densa.train.mining import MinerKind, MiningConfig, bm25_run, mine_dataset, mine_negatives

__all__ = [
    "InfoNCELoss",
    "MinerKind",
    "MiningConfig",
    "Passage",
    "RerankerConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingExample",
    "bm25_run",
    "build_dataset",
    "infonce_logits",
    "mine_dataset",
    "mine_negatives",
    "read_dpr",
    "split_dev",
    "train_bi_encoder",
    "train_reranker",
    "write_dpr",
]
