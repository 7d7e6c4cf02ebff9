"""JGMMN on 16x16 ``shapes``: the inferred codes carry the ground-truth position better than an untrained
encoder (scale only to a non-linear probe), and the multi-modal regulariser pulls the code distribution
onto the structured prior.

Probes are ridge regressions for the continuous factors (one 15-nearest-neighbour regression for
scale), fitted on the train codes and scored on the test codes; the baseline is the same
network and latent size at its initial weights.  Figures quoted are from ``OMP_NUM_THREADS=1`` CPU runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from benchbed.testing import evaluate_metric, fit, load_dataset, make_eval_context
from benchbed_mmd.mmd import mmd2

SEEDS = (0, 1, 2)
DATA = {"size": 16, "n_train": 2000, "n_val": 100, "n_test": 1000}
# Conv pair, latent size = the 4 per-shape factors, one prior mode per shape class; see the module
# docstring of benchbed_mmd.jgmmn for why these values.
PROBE_PARAMS = {"arch": "conv", "latent_dim": 4, "n_modes": 3, "prior_std": 0.2,
                "x_variances": (4.0, 8.0, 16.0, 32.0, 64.0, 128.0)}
PROBE_STEPS = 400
# The regulariser has a visible effect where the JMMD alone leaves the code marginal off the prior.
REG_PARAMS = {"hidden": (64, 128), "n_modes": 3}
REG_STEPS = 300
BATCH = 128
FACTORS = {"scale": 1, "x": 3, "y": 4}  # columns of extras["factors"]


@pytest.fixture(scope="module")
def bundles():
    return {seed: load_dataset("shapes", seed=seed, **DATA) for seed in SEEDS}


@pytest.fixture(scope="module")
def probe_models(bundles):
    """Per seed: (untrained, trained) conv JGMMN with the regulariser on (weight 1)."""
    out = {}
    for seed, b in bundles.items():
        untrained, _ = fit("jgmmn", b, steps=0, seed=seed, params=PROBE_PARAMS)
        trained, _ = fit("jgmmn", b, steps=PROBE_STEPS, batch_size=BATCH, seed=seed, params=PROBE_PARAMS)
        out[seed] = (untrained, trained)
    return out


@pytest.fixture(scope="module")
def reg_models(bundles):
    """Per seed: MLP JGMMN trained with the regulariser (weight 1) and without it (weight 0), with histories."""
    out = {}
    for seed, b in bundles.items():
        on = fit("jgmmn", b, steps=REG_STEPS, batch_size=BATCH, seed=seed, params={**REG_PARAMS, "reg_weight": 1.0})
        off = fit("jgmmn", b, steps=REG_STEPS, batch_size=BATCH, seed=seed, params={**REG_PARAMS, "reg_weight": 0.0})
        out[seed] = {"on": on, "off": off}
    return out


def probe_r2(model, bundle, regressor=lambda: Ridge(alpha=1e-3)) -> dict[str, float]:
    """Test R^2 of a regression (ridge by default) from the (standardised) codes to each continuous factor."""
    with torch.no_grad():
        z_train, z_test = model.infer(bundle.train.x).numpy(), model.infer(bundle.test.x).numpy()
    mu, sd = z_train.mean(0), z_train.std(0) + 1e-8  # standardise with train statistics only
    z_train, z_test = (z_train - mu) / sd, (z_test - mu) / sd
    f_train, f_test = bundle.extras["factors"]["train"].numpy(), bundle.extras["factors"]["test"].numpy()
    return {name: float(regressor().fit(z_train, f_train[:, c]).score(z_test, f_test[:, c]))
            for name, c in FACTORS.items()}


def prior_mmd(model, bundle) -> float:
    """Unbiased MMD^2 between the inferred test codes and 2000 prior samples (the model's z-kernel)."""
    torch.manual_seed(0)
    with torch.no_grad():
        codes, prior = model.infer(bundle.test.x), model.sample_prior(2000)
    return float(mmd2(codes, prior, model.kernels[1], unbiased=True))


@pytest.mark.parametrize("seed", SEEDS)
def test_inferred_codes_predict_position_better_than_untrained(probe_models, bundles, seed: int) -> None:
    untrained, trained = probe_models[seed]
    before, after = probe_r2(untrained, bundles[seed]), probe_r2(trained, bundles[seed])
    pos_before, pos_after = np.mean([before["x"], before["y"]]), np.mean([after["x"], after["y"]])
    # measured mean R^2 of (x, y), seeds 0/1/2: untrained 0.43/0.50/0.41 -> trained 0.79/0.79/0.73
    # (margins 0.36/0.30/0.32).  Scale is not asserted: 0.24/0.33/0.05 -> 0.23/0.15/0.44.
    assert pos_after > pos_before + 0.15, (before, after)
    # All three continuous factors together still clearly better (margins 0.24/0.13/0.35).
    assert np.mean(list(after.values())) > np.mean(list(before.values())) + 0.07, (before, after)


@pytest.mark.parametrize("seed", SEEDS)
def test_codes_carry_scale_nonlinearly(probe_models, bundles, seed: int) -> None:
    """Scale is not linearly readable from the codes (see above), but a 15-nearest-neighbour probe finds it.

    E spends the three prior modes on three regions of the image, not on the three shapes: grouping the
    test codes by their nearest mode, the groups' mean x and y differ by 0.4-0.6 (positions lie in
    [0, 1]) while each group holds the three shapes in about equal numbers.  Within each region scale
    can then lie along a different direction, which a single linear map cannot read.
    """
    untrained, trained = probe_models[seed]
    knn = lambda: KNeighborsRegressor(n_neighbors=15)  # noqa: E731
    before, after = probe_r2(untrained, bundles[seed], knn)["scale"], probe_r2(trained, bundles[seed], knn)["scale"]
    # measured (seeds 0/1/2): 0.37/0.43/0.19 -> 0.52/0.55/0.59 (linear: 0.24/0.33/0.05 -> 0.23/0.15/0.44)
    assert after > before + 0.08, (before, after)


def test_regulariser_pulls_codes_onto_the_structured_prior(reg_models, bundles) -> None:
    for seed, b in bundles.items():
        on, off = prior_mmd(reg_models[seed]["on"][0], b), prior_mmd(reg_models[seed]["off"][0], b)
        # measured (seeds 0/1/2): on 0.034/0.025/0.032, off 0.076/0.039/0.066
        assert on < 0.8 * off, (seed, on, off)


def test_regulariser_weight_zero_drops_the_term(reg_models) -> None:
    last = reg_models[0]["off"][1][-1]
    assert last["loss"] == pytest.approx(math.sqrt(last["jmmd2"]), rel=1e-4)
    last_on = reg_models[0]["on"][1][-1]
    assert last_on["loss"] == pytest.approx(math.sqrt(last_on["jmmd2"]) + math.sqrt(last_on["reg_mmd2"]), rel=1e-4)


def test_samples_approach_the_data(probe_models, bundles) -> None:
    untrained, trained = probe_models[0]
    settings = {"n_samples": 400, "n_reference": 400}
    before = evaluate_metric("mmd", make_eval_context(untrained, bundles[0]), **settings).value
    after = evaluate_metric("mmd", make_eval_context(trained, bundles[0]), **settings).value
    assert after < before / 5, (before, after)


def test_codes_stay_in_the_prior_box(probe_models, bundles) -> None:
    model = probe_models[0][1]
    assert model.resolved_settings()["arch"] == "conv"
    bound = model.prior_radius + 4 * model.prior_std  # code_bound=None -> r + 4 s
    with torch.no_grad():
        z = model.infer(bundles[0].test.x)
    assert z.shape == (len(bundles[0].test), model.latent_dim)
    assert z.abs().max() <= bound


def test_conv_needs_suitable_images() -> None:
    digits = load_dataset("digits", seed=0)  # 8x8: too small for two stride-2 layers
    with pytest.raises(ValueError, match="arch='conv'"):
        fit("jgmmn", digits, steps=0, params={"arch": "conv"})
    auto, _ = fit("jgmmn", digits, steps=0, params={"arch": "auto", "hidden": (16, 32)})
    assert auto.resolved_settings()["arch"] == "mlp"
