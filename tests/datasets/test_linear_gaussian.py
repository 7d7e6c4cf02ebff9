"""linear_gaussian: closed-form log-likelihood against scikit-learn's FactorAnalysis, true parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import FactorAnalysis

from benchbed.testing import load_dataset
from benchbed_datasets._base import ParameterError
from benchbed_datasets.linear_gaussian import LinearGaussian

PARAMS = {"n_train": 3000, "n_val": 100, "n_test": 500, "dim": 6, "latent_dim": 2, "noise_std": 0.3}


def _fa_with_true_parameters(extras: dict) -> FactorAnalysis:
    """A FactorAnalysis model whose fitted attributes are set to the truth (no fitting).

    scikit-learn's conventions: ``components_`` [n_components, n_features] = W^T, ``noise_variance_``
    [n_features] = per-feature noise variance, ``mean_`` [n_features] = b.
    """
    w, b = extras["W"].double().numpy(), extras["b"].double().numpy()
    fa = FactorAnalysis(n_components=w.shape[1])
    fa.components_ = w.T.copy()
    fa.noise_variance_ = np.full(w.shape[0], extras["noise_std"] ** 2)
    fa.mean_ = b.copy()
    fa.n_features_in_ = w.shape[0]
    return fa


def test_log_prob_matches_factor_analysis() -> None:
    bundle = load_dataset("linear_gaussian", seed=0, **PARAMS)
    fa = _fa_with_true_parameters(bundle.extras)
    x = bundle.test.x.double()
    reference = torch.from_numpy(fa.score_samples(x.numpy()))
    assert torch.allclose(bundle.log_prob(x), reference, atol=1e-6)
    # float32 input: same values to float32 precision, returned as float32.
    lp32 = bundle.log_prob(bundle.test.x)
    assert lp32.dtype == torch.float32 and torch.allclose(lp32.double(), reference, rtol=1e-5, atol=1e-4)


def test_true_parameters_explain_the_data() -> None:
    bundle = load_dataset("linear_gaussian", seed=0, **PARAMS)
    ex = bundle.extras
    assert ex["W"].shape == (6, 2) and ex["b"].shape == (6,) and ex["latent_dim"] == 2
    z = ex["latents"]["train"]
    assert z.shape == (3000, 2)
    residual = bundle.train.x - z @ ex["W"].T - ex["b"]
    assert abs(float(residual.std()) - 0.3) < 0.01
    # The true model scores the test split better than a fitted-then-perturbed one would: the
    # average true log-likelihood is close to the maximum-likelihood FactorAnalysis fit's.
    fitted = FactorAnalysis(n_components=2, random_state=0).fit(bundle.train.x.double().numpy())
    ml = fitted.score(bundle.test.x.double().numpy())
    assert abs(float(bundle.log_prob(bundle.test.x.double()).mean()) - ml) < 0.05


def test_parameters_fixed_across_split_seeds_but_data_differs() -> None:
    a = load_dataset("linear_gaussian", seed=0, **PARAMS)
    b = load_dataset("linear_gaussian", seed=1, **PARAMS)
    assert torch.equal(a.extras["W"], b.extras["W"]) and torch.equal(a.extras["b"], b.extras["b"])
    assert not torch.equal(a.train.x, b.train.x)
    c = load_dataset("linear_gaussian", seed=0, param_seed=1, **PARAMS)
    assert not torch.equal(a.extras["W"], c.extras["W"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"latent_dim": 7, "dim": 6}, "latent_dim (7) must not exceed dim (6)"),
        ({"noise_std": 0.0}, "'noise_std' must be a finite number > 0, got 0.0"),
        ({"dim": 0}, "'dim' must be an integer >= 1, got 0"),
        ({"param_seed": -1}, "'param_seed' must be an integer >= 0, got -1"),
    ],
)
def test_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match="linear_gaussian") as info:
        LinearGaussian(**params)
    assert message in str(info.value)
