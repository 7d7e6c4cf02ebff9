"""Why svebm does not beat logistic regression with 10 labels per class on mnist5k: the experiments
behind ``docs/investigations.md`` (run by hand; not a test, not a benchmark).

Each run trains ``svebm`` on ``mnist5k`` as the standard suite does (its ``[models.svebm]`` entry: MLP
networks, 10 labels per class chosen by ``label_seed = 0``, 2 000 steps of batch 100, Langevin prior
chains), with one variant applied, and reports on the test split:

* ``accuracy``: argmax f(mu(x)), the ``accuracy`` metric's value;
* ``probe``: logistic regression (C = 1) on the trained encoder's mu(x) of the same 100 labelled
  images, i.e. how linearly separable the learned codes are;
* ``logreg_pixels``: the metric's reference row (logistic regression on raw pixels, same labels).

Variants (``--variant``):

* ``suite``: the suite's configuration (w_l = 200, w_mi = 100, encoder dropout 0.5);
* ``labels_only``: the paper's baseline, the same encoder and f trained on the labelled
  cross-entropy alone (step 1 of svebm's loop only; no generator, EBM or MI term);
* ``mi10``, ``mi0``: the mutual-information weight w_mi at 10 and 0 instead of the text
  experiments' 100;
* ``no_dropout``: encoder dropout 0.

Usage (from the repository root, one intra-op thread)::

    PYTHONPATH=.:plugins python docs/investigations/svebm_claims.py --variant suite --seed 0

It prints one JSON line with the figures last.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from benchbed import testing
from benchbed_ebm.labels import select_labelled
from benchbed_ebm.svebm import SVEBM

#: The standard suite's ``[models.svebm]`` entry (leaderboards/standard/suite.toml).
SUITE_PARAMS: dict[str, Any] = {"arch": "mlp", "n_labels_per_class": 10}
STEPS = 2000
VARIANTS: dict[str, dict[str, Any]] = {
    "suite": {},
    "labels_only": {},
    "mi10": {"mi_weight": 10.0},
    "mi0": {"mi_weight": 0.0},
    "no_dropout": {"enc_dropout": 0.0},
}


def _labelled_step_only(self: SVEBM, batch: Any, step: int) -> dict[str, float]:
    """svebm's step 1 alone: ``w_l * CE(f(mu(x_l)), y_l)`` updates f and q (the paper's baseline)."""
    for opt in self.optimizers.values():
        opt.zero_grad(set_to_none=True)
    pick = torch.randint(0, self.n_labelled, (batch.x.shape[0],), device=self.device)
    mu_l, _ = self._q(self.scale.to_model(self._x_l[pick]))
    ce = F.cross_entropy(self.ebm(mu_l), self._y_l[pick])
    (self.labeled_weight * ce).backward()
    self.optimizers["e"].step()
    self.optimizers["i"].step()
    return {"ce_labelled": ce.item()}


def _logreg(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return float(np.mean(clf.predict(x_test) == y_test))


def run(variant: str, seed: int) -> dict[str, Any]:
    """Train one variant and return its test accuracy, linear-probe accuracy and the pixel baseline."""
    if variant == "labels_only":
        SVEBM.train_step = _labelled_step_only  # type: ignore[method-assign]
    bundle = testing.load_dataset("mnist5k", seed=seed)
    start = time.perf_counter()
    model, hist = testing.fit("svebm", bundle, steps=STEPS, batch_size=100, seed=seed, sampler="langevin",
                              params={**SUITE_PARAMS, **VARIANTS[variant]})
    train_s = time.perf_counter() - start
    model.eval()
    train, test = bundle.train, bundle.test
    assert train.y is not None and test.y is not None
    index = select_labelled(train.y, SUITE_PARAMS["n_labels_per_class"], 0)
    with torch.no_grad():
        accuracy = float((model.classify(test.x).argmax(1) == test.y).double().mean())
        mu_train, mu_test = model.infer(train.x[index]).numpy(), model.infer(test.x).numpy()
    y_l, y_test = train.y[index].numpy(), test.y.numpy()
    last = hist[-1] if hist else {}
    return {"variant": variant, "seed": seed, **VARIANTS[variant], "train_s": round(train_s),
            "accuracy": accuracy, "probe": _logreg(mu_train, y_l, mu_test, y_test),
            "logreg_pixels": _logreg(train.x[index].flatten(1).double().numpy(), y_l,
                                     test.x.flatten(1).double().numpy(), y_test),
            "last_losses": {k: round(float(v), 4) for k, v in last.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="suite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(run(args.variant, args.seed)))


if __name__ == "__main__":
    main()
