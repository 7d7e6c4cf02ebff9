"""The ``accuracy`` metric against a direct computation, and its logistic-regression reference row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from benchbed.errors import NotApplicable
from benchbed.testing import check_metric, evaluate_metric, fit, load_dataset, load_registry_strict
from benchbed_ebm.labels import index_digest, select_labelled


class _LinearClassifier:
    """A fixed random linear classifier: an independent model whose predictions we can recompute."""

    capabilities = frozenset({"classify"})

    def __init__(self, dim: int, k: int) -> None:
        g = torch.Generator().manual_seed(3)
        self.w = torch.randn(dim, k, generator=g)
        self.b = torch.randn(k, generator=g)
        self.n_labelled = 7

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _ctx(model, bundle):
    from benchbed.contracts import EvalContext

    return EvalContext(model=model, data=bundle, device=torch.device("cpu"), seed=0,
                       train_variant=lambda b: None)


def test_accuracy_matches_direct_numpy_computation(digits) -> None:
    model = _LinearClassifier(64, 10)
    res = evaluate_metric("accuracy", _ctx(model, digits), batch_size=37)  # odd batch: checks the batching
    x, y = digits.test.x.flatten(1).numpy(), digits.test.y.numpy()
    pred = np.argmax(x @ model.w.numpy() + model.b.numpy(), axis=1)
    assert res.value == pytest.approx(float(np.mean(pred == y)), abs=1e-12)
    assert res.settings["n_labelled"] == 7 and res.settings["n_test"] == len(y)
    for c, acc in res.details["per_class"].items():
        assert acc == pytest.approx(float(np.mean(pred[y == c] == c)))


def test_accuracy_needs_classify(digits) -> None:
    class NoClassify:
        capabilities = frozenset({"sample"})

    spec = load_registry_strict().metric("accuracy")
    assert spec.needs_labels and spec.higher_is_better and spec.requires == frozenset({"classify"})
    with pytest.raises(NotApplicable, match="classify"):
        evaluate_metric("accuracy", _ctx(NoClassify(), digits))
    check_metric("accuracy")


def test_selection_is_deterministic_and_stratified(digits) -> None:
    y = digits.train.y
    a, b, c = select_labelled(y, 5, 0), select_labelled(y, 5, 0), select_labelled(y, 5, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.bincount(y[a], minlength=10), torch.full((10,), 5))
    assert len(torch.unique(a)) == 50


@pytest.mark.parametrize(("svebm_seed", "fit_seed"), [(0, 4), (None, 4)])
def test_reference_row_uses_svebm_labels(digits, svebm_seed, fit_seed) -> None:
    """The reference row and svebm (trained 0 steps: setup only) pick the same 10 x 10 images, and the
    row's value is scikit-learn's logistic regression on exactly those images.  With ``label_seed=None``
    both follow the cell seed."""
    params = {"n_labels_per_class": 10, "label_seed": svebm_seed}
    model, _ = fit("svebm", digits, steps=0, seed=fit_seed, params=params)
    metric = load_registry_strict().metric("accuracy").factory(n_labels_per_class=10, label_seed=svebm_seed)
    (row,) = metric.references(digits, seed=fit_seed)
    assert model.n_labelled == 100 and row.result.settings["n_labelled"] == 100
    assert row.result.settings["labelled_digest"] == index_digest(model.labelled_index)
    expected = select_labelled(digits.train.y, 10, fit_seed if svebm_seed is None else svebm_seed)
    assert torch.equal(model.labelled_index, expected)
    idx = model.labelled_index.numpy()
    x_tr = digits.train.x.flatten(1).double().numpy()
    clf = LogisticRegression(max_iter=2000).fit(x_tr[idx], digits.train.y.numpy()[idx])
    direct = float(np.mean(clf.predict(digits.test.x.flatten(1).double().numpy()) == digits.test.y.numpy()))
    assert row.result.value == pytest.approx(direct, abs=1e-9)
    assert 0.5 < row.result.value < 1.0  # 100 labelled digits: a real, imperfect baseline
    res = evaluate_metric("accuracy", _ctx(model, digits), n_labels_per_class=10)
    assert res.settings["labelled_digest"] == row.result.settings["labelled_digest"]
    assert res.details["logreg_same_labels"] == pytest.approx(direct, abs=1e-9)
