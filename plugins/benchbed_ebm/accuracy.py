"""Classification accuracy of a semi-supervised model, with a logistic-regression reference row.

The value is the fraction of the test split whose ``argmax model.classify(x)`` equals the label.
The number of labels the model trained on (``model.n_labelled``) is recorded in the settings:
accuracies with different label budgets are different experiments.

Reference row: scikit-learn's ``LogisticRegression`` on the raw data-scale pixels / coordinates of
the *same* labelled examples, chosen by :func:`benchbed_ebm.labels.select_labelled` with the same
(labels per class, seed) as ``svebm`` — one function, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Gt

from benchbed.contracts import DataBundle, EvalContext, MetricResult, ReferenceRow, Split
from benchbed.errors import NotApplicable
from benchbed_ebm.labels import index_digest, labels_do_not_fit, select_labelled


def logistic_regression_accuracy(train: Split, index: torch.Tensor, test: Split, *, max_iter: int = 2000) -> float:
    """Test accuracy of ``LogisticRegression`` (lbfgs, C = 1) fit on ``train[index]`` (flattened)."""
    from sklearn.linear_model import LogisticRegression

    assert train.y is not None and test.y is not None
    x_l = train.x[index].flatten(1).double().numpy()
    y_l = train.y[index].numpy()
    clf = LogisticRegression(max_iter=max_iter)
    clf.fit(x_l, y_l)
    pred = clf.predict(test.x.flatten(1).double().numpy())
    return float(np.mean(pred == test.y.numpy()))


class Accuracy:
    """Test-split accuracy of ``classify``.

    Args:
        n_labels_per_class: labels per class of the reference row (set it to the models' value).
        label_seed: seed of the reference row's labelled subset (svebm's default is 0 too);
            ``None`` = the seed handed to :meth:`references`, matching svebm with ``label_seed=None``.
        batch_size: examples per ``classify`` call.
    """

    def __init__(
        self,
        *,
        n_labels_per_class: Annotated[int, Gt(0)] = 10,
        label_seed: int | None = 0,
        batch_size: Annotated[int, Gt(0)] = 500,
    ) -> None:
        self.n_labels_per_class = n_labels_per_class
        self.label_seed = label_seed
        self.batch_size = batch_size

    def check_data(self, data: DataBundle) -> None:
        """The reference row's labelled subset must fit in the training split (checked before training)."""
        if problem := labels_do_not_fit(data, self.n_labels_per_class):
            raise ValueError(problem)

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        model, test = ctx.model, ctx.data.test
        if test.y is None:
            raise NotApplicable(f"metric 'accuracy': data set {ctx.data.info.name!r} has no test labels")
        with torch.no_grad():
            logits = torch.cat([model.classify(x.to(ctx.device)).detach().cpu()
                                for x in torch.split(test.x, self.batch_size)])
        pred = logits.argmax(dim=1)
        correct = (pred == test.y).double()
        per_class = {int(c): float(correct[test.y == c].mean()) for c in torch.unique(test.y).tolist()}
        n_labelled = getattr(model, "n_labelled", None)
        settings: dict[str, Any] = {"split": "test", "n_test": len(test),
                                    "n_labelled": None if n_labelled is None else int(n_labelled)}
        details: dict[str, Any] = {"per_class": per_class}
        index = getattr(model, "labelled_index", None)
        if isinstance(index, torch.Tensor) and ctx.data.train.y is not None:
            index = index.detach().cpu()
            settings["labelled_digest"] = index_digest(index)
            # The baseline on exactly the model's labels, kept beside its value for this cell.
            details["logreg_same_labels"] = logistic_regression_accuracy(ctx.data.train, index, test)
        return MetricResult(value=float(correct.mean()), settings=settings, details=details)

    def labelled_index(self, data: DataBundle, seed: int = 0) -> torch.Tensor:
        """The reference row's labelled training indices (svebm's rule with this metric's settings)."""
        if data.train.y is None:
            raise NotApplicable(f"metric 'accuracy': data set {data.info.name!r} has no training labels")
        return select_labelled(data.train.y, self.n_labels_per_class, seed if self.label_seed is None
                               else self.label_seed)

    def references(self, data: DataBundle, seed: int = 0) -> list[ReferenceRow]:
        """Logistic regression on the same labelled examples as ``svebm`` with the same settings.

        ``seed`` is the cell seed, used only when ``label_seed`` is None (a runner that does not
        pass it gets 0).
        """
        if data.train.y is None or data.test.y is None:
            return []
        index = self.labelled_index(data, seed)
        acc = logistic_regression_accuracy(data.train, index, data.test)
        settings = {"split": "test", "n_test": len(data.test), "n_labelled": int(index.numel()),
                    "labelled_digest": index_digest(index), "classifier": "sklearn LogisticRegression(C=1)",
                    "features": "raw data-scale inputs"}
        label = f"logistic regression ({int(index.numel())} labels)"
        return [ReferenceRow(label=label, result=MetricResult(value=acc, settings=settings))]
