"""Threshold-free ranking scores of continuous anomaly scores: AUROC and average precision (AUPRC).

Both are scikit-learn's (``roc_auc_score``, ``average_precision_score``); this module fixes the
conventions (higher score = positive = anomalous) and validates the inputs.  The definitions:

* AUROC = P(score of a random positive > score of a random negative) + 0.5 P(tie), i.e. the
  Mann-Whitney U statistic divided by ``n_pos * n_neg``.
* Average precision = ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing
  order (tied scores form one threshold), with ``P_n``, ``R_n`` the precision and recall of
  "score >= threshold n" and ``R_0 = 0``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score


def _check(scores: ArrayLike, positive: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(scores as float64 [N], labels as bool [N])``.

    Raises:
        ValueError: lengths differ, a score is not finite, or only one class is present.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(positive).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in length")
    if not np.isfinite(s).all():
        raise ValueError("anomaly scores contain non-finite values")
    if y.all() or not y.any():
        raise ValueError("AUROC/AUPRC need both positive and negative examples")
    return s, y


def auroc(scores: ArrayLike, positive: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` [N] for the boolean labels ``positive`` [N].

    Higher scores should mean positive (anomalous); ties count 1/2.  Raises ``ValueError`` as
    :func:`_check`.
    """
    s, y = _check(scores, positive)
    return float(roc_auc_score(y, s))


def average_precision(scores: ArrayLike, positive: ArrayLike) -> float:
    """Average precision (step-wise area under the precision-recall curve) of ``scores`` [N] for
    the boolean labels ``positive`` [N]; raises ``ValueError`` as :func:`_check`."""
    s, y = _check(scores, positive)
    return float(average_precision_score(y, s))
