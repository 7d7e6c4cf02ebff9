"""svebm: the MI term against a direct formula, the labelled subset rule, and semi-supervised learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.testing import fit, load_dataset
from benchbed_ebm.svebm import mutual_information

SMALL = {"latent_dim": 32}  # official-shaped nets at their CPU sizes; chains shortened below
ROLES = {"prior": {"n_steps": 20}}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_mutual_information_matches_direct_formula() -> None:
    logits = torch.randn(7, 4, generator=torch.Generator().manual_seed(0)) * 3
    p = torch.softmax(logits, dim=1).double().numpy()
    marginal = p.mean(axis=0)
    direct = -(marginal * np.log(marginal)).sum() + (p * np.log(p)).sum(axis=1).mean()
    assert float(mutual_information(logits)) == pytest.approx(direct, abs=1e-5)
    # Bounds: 0 for identical predictions, log K for confident, balanced ones.
    assert float(mutual_information(torch.zeros(5, 3))) == pytest.approx(0.0, abs=1e-6)
    assert float(mutual_information(torch.eye(4) * 50)) == pytest.approx(math.log(4), abs=1e-4)


def test_svebm_learns_digits_with_10_labels_per_class(digits, mmd2) -> None:
    untrained, _ = fit("svebm", digits, steps=0, params=SMALL, roles=ROLES)
    model, _ = fit("svebm", digits, steps=250, params=SMALL, roles=ROLES)
    x, y = digits.test.x[:300], digits.test.y[:300]
    torch.manual_seed(0)
    with torch.no_grad():
        rec0, rec = (float(((m.reconstruct(x) - x) ** 2).mean()) for m in (untrained, model))
        mmd0, mmd = (mmd2(m.sample(300), x) for m in (untrained, model))
        logits = model.classify(x)
        acc = float((logits.argmax(1) == y).float().mean())
        # Classification is softmax(f(mu(x))): the EBM's K logits at the inference mean.
        assert torch.allclose(logits, model.ebm(model.infer(x)))
    mean_image = float(((x - digits.train.x.mean(0)) ** 2).mean())
    assert model.n_labelled == 100
    assert rec < 0.6 * mean_image and rec < 0.4 * rec0, (rec, rec0, mean_image)
    assert mmd < 0.5 * mmd0, (mmd, mmd0)
    assert acc > 0.7, acc  # chance is 0.1; 100 labels
