"""Threshold-free ranking scores of continuous anomaly scores: AUROC and average precision (AUPRC).

Own implementations (checked against scikit-learn in tests/metrics), so the definitions are explicit:

* AUROC = P(score of a random positive > score of a random negative) + 0.5 P(tie), the Mann-Whitney U
  statistic divided by ``n_pos * n_neg``.
* Average precision = ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing
  order (tied scores form one threshold), scikit-learn's ``average_precision_score`` definition.
"""

from __future__ import annotations

import numpy as np


def _check(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(positive).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in length")
    if not np.isfinite(s).all():
        raise ValueError("anomaly scores contain non-finite values")
    if y.all() or not y.any():
        raise ValueError("AUROC/AUPRC need both positive and negative examples")
    return s, y


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of ``s`` with ties given their average rank."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # Boundaries of runs of equal values.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve; higher scores should mean positive (anomalous)."""
    s, y = _check(scores, positive)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    u = _average_ranks(s)[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise)."""
    s, y = _check(scores, positive)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct threshold
    tp = np.cumsum(y)[last].astype(np.float64)
    predicted = last + 1.0
    precision = tp / predicted
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
