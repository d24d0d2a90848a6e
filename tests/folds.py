"""One way for tests to cut a fold from bars, the way the product does (trainables.prep.model_table)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from trainables.parameters.train_config import TrainConfig
from trainables.prep.dataset import FoldData, Targets, prepare_fold_for
from trainables.prep.model_table import build_table, holdout_split
from trainables.prep.splits import FinalSplit


@dataclass
class BuiltFold:
    fold: FoldData
    features: pd.DataFrame
    targets: Targets
    split: FinalSplit


def make_fold(cfg: TrainConfig, bars: pd.DataFrame, *, test_as_eval: bool = False) -> BuiltFold:
    """bars -> features and targets -> the chronological split -> a fold that trains on
    train and early-stops on val (and scores the test part, with ``test_as_eval``)."""
    features, targets = build_table(bars, cfg)
    split = holdout_split(len(features), cfg)
    evaluate = split.test if test_as_eval else None
    fold = prepare_fold_for(cfg, features, targets, split.train, split.val, evaluate)
    return BuiltFold(fold, features, targets, split)
