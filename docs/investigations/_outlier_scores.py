"""The investigations' one way to rank a held-out class: AUPRC and AUROC of a score on a test split
(higher score = more anomalous), printed and kept in the experiment's JSON record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score


def scorer(positive: np.ndarray, out: dict[str, Any]) -> Callable[[str, torch.Tensor], None]:
    """``score(tag, s)``: AUPRC / AUROC of scores ``s`` [N] against the boolean labels ``positive`` [N],
    stored as ``out[tag] = {"auprc": ..., "auroc": ...}`` and printed."""

    def score(tag: str, s: torch.Tensor) -> None:
        values = s.detach().numpy().astype(np.float64)
        out[tag] = {"auprc": float(average_precision_score(positive, values)),
                    "auroc": float(roc_auc_score(positive, values))}
        print(tag, out[tag], flush=True)

    return score
