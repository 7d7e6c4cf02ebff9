"""Outlier AUROC / AUPRC: the ranking statistics against scikit-learn, and the held-out-class protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from benchbed.contracts import DataBundle
from benchbed.errors import NotApplicable
from benchbed.testing import evaluate_metric, load_dataset
from benchbed_metrics.ranking import auroc, average_precision


def _auroc_pairwise(scores: np.ndarray, y: np.ndarray) -> float:
    """Brute force: every (positive, negative) pair, 1 if the positive scores higher, 1/2 on a tie."""
    pos, neg = scores[y], scores[~y]
    total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return total / (len(pos) * len(neg))


def _average_precision_by_thresholds(scores: np.ndarray, y: np.ndarray) -> float:
    """Brute force: for each distinct threshold t (decreasing), precision and recall of "score >= t"
    by counting, summed as (R_t - R_previous) * P_t."""
    total, previous_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        flagged = scores >= t
        tp = int((flagged & y).sum())
        precision, recall = tp / int(flagged.sum()), tp / int(y.sum())
        total += (recall - previous_recall) * precision
        previous_recall = recall
    return total


@pytest.mark.parametrize("seed", range(5))
def test_ranking_statistics_equal_brute_force_references(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.2
    y[:2] = [True, False]
    scores = rng.normal(size=300) + 1.0 * y
    if seed % 2:  # heavy ties, also across the classes
        scores = np.round(scores, 0)
    assert auroc(scores, y) == pytest.approx(_auroc_pairwise(scores, y), abs=1e-12)
    assert average_precision(scores, y) == pytest.approx(_average_precision_by_thresholds(scores, y), abs=1e-12)
    if seed % 2 == 0:  # no ties: AP is the mean, over the positives, of the precision at their rank
        ranked = y[np.argsort(-scores)]
        precision_at_positives = (np.cumsum(ranked) / np.arange(1, len(y) + 1))[ranked]
        assert average_precision(scores, y) == pytest.approx(float(precision_at_positives.mean()), abs=1e-12)
    assert auroc(scores.tolist(), y.astype(int)) == auroc(scores, y)  # lists and 0/1 labels are accepted


def test_perfect_and_reversed_scores() -> None:
    y = np.array([0, 0, 1, 0, 1, 1, 0], dtype=bool)
    perfect = y.astype(float) + np.linspace(0, 0.1, len(y))
    assert auroc(perfect, y) == 1.0 and average_precision(perfect, y) == 1.0
    assert auroc(-perfect, y) == 0.0
    assert auroc(np.zeros(len(y)), y) == 0.5  # all tied: chance
    with pytest.raises(ValueError, match="both positive and negative"):
        auroc(perfect, np.ones(len(y), dtype=bool))


class _NearestMean:
    """A 'trained model' whose anomaly score is the distance to the nearest training-class mean."""

    capabilities = frozenset({"anomaly_score", "reconstruct"})

    def __init__(self, bundle: DataBundle) -> None:
        assert bundle.train.y is not None
        self.means = torch.stack([bundle.train.x[bundle.train.y == c].mean(0) for c in bundle.train.y.unique()])

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x.flatten(1), self.means.flatten(1)).min(dim=1).values

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:  # snaps to the nearest mean
        idx = torch.cdist(x.flatten(1), self.means.flatten(1)).argmin(dim=1)
        return self.means[idx]


def test_held_out_class_protocol_shares_trainings_between_metrics(make_ctx) -> None:
    bundle = load_dataset("gmm8", seed=0)
    trained: list[tuple[int, ...]] = []

    def train_variant(variant: DataBundle) -> _NearestMean:
        assert variant.test.content_hash() == bundle.test.content_hash()  # the test split is unchanged
        assert variant.train.y is not None and not torch.isin(variant.train.y, torch.tensor(variant.held_out)).any()
        trained.append(variant.held_out)
        return _NearestMean(variant)

    ctx = make_ctx(_NearestMean(bundle), bundle, train_variant)
    roc = evaluate_metric("outlier_auroc", ctx, classes=[0, 3, 5])
    prc = evaluate_metric("outlier_auprc", ctx, classes=[0, 3, 5])
    assert trained == [(0,), (3,), (5,)]  # one training per class, reused by the second metric
    assert set(roc.details["per_class"]) == {"0", "3", "5"} and roc.settings["score"] == ["anomaly_score"]
    assert roc.estimator == "model score"
    n_test = bundle.test.x.shape[0]
    assert torch.as_tensor(roc.per_example).shape == (3 * n_test,)  # the scores, class after class
    # A held-out mode of the 8-Gaussian ring is far from every remaining mean: near-perfect detection.
    assert roc.value > 0.95 and prc.value > 0.8
    assert roc.value == pytest.approx(np.mean(list(roc.details["per_class"].values())))

    # Independent check of one class with scikit-learn on the same scores.
    model = _NearestMean(bundle.hold_out((3,)))
    scores = model.anomaly_score(bundle.test.x).numpy()
    assert roc.details["per_class"]["3"] == pytest.approx(roc_auc_score(bundle.test.y.numpy() == 3, scores))
    assert prc.details["per_class"]["3"] == pytest.approx(average_precision_score(bundle.test.y.numpy() == 3, scores))


def test_untrained_scores_are_at_chance_and_recon_score_works(make_ctx) -> None:
    bundle = load_dataset("gmm8", seed=0)

    class Random:
        capabilities = frozenset({"anomaly_score"})

        def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
            return torch.rand(x.shape[0], generator=torch.Generator().manual_seed(0))

    chance = evaluate_metric("outlier_auroc", make_ctx(Random(), bundle, lambda v: Random()), classes=[1, 2])
    assert abs(chance.value - 0.5) < 0.1
    recon = evaluate_metric("outlier_auroc", make_ctx(_NearestMean(bundle), bundle, _NearestMean), classes=[1],
                            score="recon")
    assert recon.settings["score"] == ["recon"] and recon.value > 0.95 and recon.estimator == "recon"
    with pytest.raises(NotApplicable, match="needs labels"):
        unlabelled = load_dataset("linear_gaussian", seed=0, n_train=50, n_val=20, n_test=20)
        evaluate_metric("outlier_auroc", make_ctx(Random(), unlabelled))
