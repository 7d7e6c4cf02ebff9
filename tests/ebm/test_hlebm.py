"""hlebm: densities against independent references, the fused chains against plain autograd, learning
under both schemes, the hierarchy probe."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from benchbed.blocks.gaussian import std_normal_log_prob
from benchbed.contracts import Batch, Budget, DataBundle, DatasetInfo, EngineOptions, Split
from benchbed.testing import bound_sampler, build_model, fit, load_dataset
from benchbed.training import setup_model
from tests.ebm.conftest import assert_same_training

# CPU test scale: small nets and short chains, learning rates raised so that a few hundred steps learn.
SMALL = {"latent_dims": (16, 8), "cond_width": 64, "cond_layers": 2, "ebm_widths": (64, 32), "hidden": 64,
         "g_lr": 1e-3, "cond_lr": 1e-3, "i_lr": 1e-3}
MLE_ROLES = {"prior": {"n_steps": 10}, "posterior": {"n_steps": 10, "step_size": 0.2}}
VAR_ROLES = {"prior": {"n_steps": 10}}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def tiny(digits):
    """A 3-layer variational model after two steps: enough to have non-trivial nets."""
    params = {**SMALL, "latent_dims": (4, 3, 2), "scheme": "variational"}
    model, _ = fit("hlebm", digits, steps=2, batch_size=32, params=params, roles=VAR_ROLES)
    return model


def test_base_density_and_residuals_match_torch_distributions(tiny) -> None:
    prior = tiny.prior
    with torch.no_grad():
        z = prior.sample_base(5)
        z1, z2, z3 = prior.split(z)
        ref = Normal(0.0, 1.0).log_prob(z3).sum(-1)
        for zl, zup, cond in ((z1, z2, prior.conds[0]), (z2, z3, prior.conds[1])):
            mu, sigma = cond(zup)
            ref = ref + Normal(mu, sigma).log_prob(zl).sum(-1)
        assert torch.allclose(prior.base_log_prob(z), ref, atol=1e-5)
        assert torch.allclose(prior.from_residual(prior.to_residual(z)), z, atol=1e-5)
        # log_prior = sum of the layer-wise terms + base, exactly.
        f = sum(prior.energy_terms(z))
        assert torch.allclose(tiny.log_prior(z), f + ref, atol=1e-5)


def test_proposal_and_log_joint_match_independent_formulas(tiny, digits) -> None:
    x = digits.test.x[:6]
    with torch.no_grad():
        q = tiny.proposal(x)
        z = q.sample((3,))  # [3, 6, Z]
        assert z.shape == (3, 6, sum(tiny.latent_dims))
        x_m = 2 * x - 1
        mu, sigma = tiny.inference.first_params(x_m)
        z1, z2, z3 = torch.split(z, tiny.latent_dims, dim=-1)
        ref = Normal(mu, sigma).log_prob(z1).sum(-1)
        for lower, upper, up in ((z1, z2, tiny.inference.ups[0]), (z2, z3, tiny.inference.ups[1])):
            m, s = up(lower)
            ref = ref + Normal(m, s).log_prob(upper).sum(-1)
        assert torch.allclose(q.log_prob(z), ref, atol=1e-4)
        # log p(x|z) in the data scale: N(2x-1; g(z1), 0.3^2) plus log|d(2x-1)/dx| = 64 log 2.
        zz = z[0]
        lik = Normal(tiny.gen(zz[:, :4]), 0.3).log_prob(x_m).flatten(1).sum(1) + 64 * math.log(2.0)
        assert torch.allclose(tiny.log_joint(x, zz), lik + tiny.log_prior(zz), atol=1e-3)
        assert torch.allclose(tiny.anomaly_score(x), -tiny.log_joint(x, tiny.infer(x)), atol=1e-4)


def test_log_partition_is_exact_for_constant_energies(tiny) -> None:
    with torch.no_grad():
        saved = [(f[-1].weight.clone(), f[-1].bias.clone()) for f in tiny.prior.energies]
        try:
            for f, c in zip(tiny.prior.energies, (0.5, -2.0, 1.0), strict=True):
                f[-1].weight.zero_()
                f[-1].bias.fill_(c)
            value, n, ess = tiny.log_partition(64)  # Z = E_base[exp(sum_l c_l)] = exp(-0.5)
            assert n == 64 and value == pytest.approx(-0.5, abs=1e-5)
            assert ess == pytest.approx(64.0)  # equal weights: every draw counts
        finally:
            for f, (w, b) in zip(tiny.prior.energies, saved, strict=True):
                f[-1].weight.copy_(w)
                f[-1].bias.copy_(b)


# --------------------------------------------------------------------------- fused chains vs plain autograd


def _engine_pair(bundle, params, roles, batch_size: int = 32):
    """Two identically initialised models (same seed): ``engine.fused`` on and off."""
    models = []
    for fused in (True, False):
        model = build_model("hlebm", params)
        setup_model(model, bundle, Budget(10, batch_size), seed=0, device=torch.device("cpu"),
                    sampler=bound_sampler("hlebm", None, None, roles), engine=EngineOptions(fused=fused))
        models.append(model)
    assert models[0].fused and not models[1].fused
    return models


def _conv_bundle() -> DataBundle:
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    split = Split(x, torch.arange(16) % 10)
    return DataBundle(info=DatasetInfo(name="fake28", shape=(1, 28, 28), kind="image", n_classes=10),
                      train=split, val=split, test=split)


def _plain_log_density(model, space: str, x_m):
    """The target of the plain path, written from the model's public densities (not its fused code)."""
    def tilt(z):
        return model.prior.energy(z) + (0.0 if x_m is None else model._neg_rec(x_m, z))

    if space == "z":
        return lambda z: tilt(z) + model.prior.base_log_prob(z)
    return lambda u: tilt(model.prior.from_residual(u)) + std_normal_log_prob(u)


@pytest.mark.parametrize("space", ["z", "residual"])
@pytest.mark.parametrize(("data", "params"), [
    ("digits", {}),
    ("digits", {"latent_dims": (6, 4, 3), "prior_skip": False}),  # three layers, MLP-only means
    ("gmm8", {"cond_layers": 0, "ebm_layers": (0,)}),              # one-Linear nets
    ("conv28", {"channels": 4}),                                    # conv generator: autograd jet
])
def test_fused_value_and_gradient_equal_autograd(digits, space: str, data: str, params: dict) -> None:
    """``grad_fn`` (prior, and posterior with the likelihood term) equals autograd through the
    model's own densities to float32 rounding, for values, gradients and either output alone."""
    bundle = _conv_bundle() if data == "conv28" else digits if data == "digits" else load_dataset("gmm8", seed=0)
    model, _ = _engine_pair(bundle, {**SMALL, **params, "mcmc_space": space}, MLE_ROLES)
    with torch.no_grad():  # log sigma biases from -2 to 6: some sigma_l small, some past the clamp at 5
        for cond in model.prior.conds:
            head = cond.net[-1]
            d = head.out_features // 2
            head.bias[d:] = torch.linspace(-2.0, 6.0, d)
    x_m = model.scale.to_model(bundle.train.x[:16])
    torch.manual_seed(3)
    z = 1.5 * torch.randn(16, model.prior.dim)
    for post in (None, x_m):
        zr = z.clone().requires_grad_(True)
        ref = _plain_log_density(model, space, post)(zr).detach()
        (g_ref,) = torch.autograd.grad(_plain_log_density(model, space, post)(zr).sum(), zr)
        fn = model.prior.grad_fn(space, None if post is None else model._likelihood_fn(post))
        with torch.no_grad():
            value, grad = fn(z, True, True)
            value_only, none_grad = fn(z, True, False)
            none_value, grad_only = fn(z, False, True)
        assert none_grad is None and none_value is None
        assert torch.equal(value, value_only) and torch.equal(grad, grad_only)
        assert torch.allclose(value, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
        assert torch.allclose(grad, g_ref, rtol=1e-5, atol=1e-5 * float(g_ref.abs().max()))


@pytest.mark.parametrize("scheme", ["mle", "variational"])
def test_fused_and_plain_engines_give_the_same_chains_and_training(digits, scheme: str) -> None:
    """Same seed, ``engine.fused`` on and off: the same chains (start points and noise from the global
    RNG in the same order) up to rounding, the same training steps, and the weights are trainable
    again after the fused chains with no gradient left on them."""
    roles = MLE_ROLES if scheme == "mle" else VAR_ROLES
    fused, plain = _engine_pair(digits, {**SMALL, "scheme": scheme}, roles)
    x = digits.train.x[:32]
    x_m = fused.scale.to_model(x)
    def chains(model):
        return [lambda: model._prior_mcmc(32)] + ([lambda: model._posterior_mcmc(x_m)] if scheme == "mle" else [])

    for run_fused, run_plain in zip(chains(fused), chains(plain), strict=True):
        torch.manual_seed(7)
        a = run_fused()
        torch.manual_seed(7)
        b = run_plain()
        assert not a.requires_grad and a.shape == (32, fused.prior.dim)
        assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    assert all(p.requires_grad and p.grad is None for p in fused.parameters())
    batch = Batch(x, None, torch.arange(32))
    assert_same_training(fused, plain, batch)


def _assert_learned(untrained, model, bundle, scores) -> None:
    rec0, mmd0 = scores(untrained, bundle)
    rec, mmd = scores(model, bundle)
    # The per-pixel training mean reconstructs every image with MSE ~0.073: learning the mean is not enough.
    mean_image = float(((bundle.test.x[:300] - bundle.train.x.mean(0)) ** 2).mean())
    assert rec < 0.6 * mean_image and rec < 0.4 * rec0, (rec, rec0, mean_image)
    assert mmd < 0.35 * mmd0, (mmd, mmd0)


@pytest.fixture(scope="module")
def variational(digits):
    """(untrained, trained) 2-layer models of the variational scheme, shared by the tests below."""
    params = {**SMALL, "scheme": "variational"}
    untrained, _ = fit("hlebm", digits, steps=0, batch_size=64, params=params, roles=VAR_ROLES)
    model, _ = fit("hlebm", digits, steps=250, batch_size=64, params=params, roles=VAR_ROLES)
    return untrained, model


def test_hlebm_mle_learns_digits(digits, scores) -> None:
    params = {**SMALL, "scheme": "mle"}
    untrained, _ = fit("hlebm", digits, steps=0, batch_size=64, params=params, roles=MLE_ROLES)
    model, _ = fit("hlebm", digits, steps=200, batch_size=64, params=params, roles=MLE_ROLES)
    assert model.fused  # the default engine: the learning tests cover the fused chains
    _assert_learned(untrained, model, digits, scores)


def test_hlebm_variational_learns_digits(variational, digits, scores) -> None:
    _assert_learned(*variational, digits, scores)


@pytest.fixture(scope="module")
def digit_classifier(digits):
    """Logistic regression on the digits training split (~0.95 test accuracy): names a sample's digit."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=3000).fit(digits.train.x.flatten(1).numpy(), digits.train.y.numpy())


def resample_effect(model, layer: int, classifier, n: int = 60, k: int = 6) -> tuple[float, float]:
    """How much resampling one layer's code changes samples, all other residuals fixed.

    Returns ``(pixel_variance, class_flip_rate)``:
    * pixel_variance: variance over the ``k`` resamples, averaged over pixels and the ``n`` base
      samples (the magnitude of the change, in [0,1]-pixel units squared);
    * class_flip_rate: fraction of resamples whose digit (``classifier``) differs from the first
      resample's: a semantic, global change (identity) rather than a local one (style).
    """
    torch.manual_seed(1)
    with torch.no_grad():
        s = model.sample_with_fixed(layer, n, k)  # [n, k, 1, 8, 8]
    pixel_variance = float(s.var(dim=1).mean())
    pred = torch.as_tensor(classifier.predict(s.reshape(n * k, -1).numpy())).reshape(n, k)
    return pixel_variance, float((pred[:, 1:] != pred[:, :1]).float().mean())


def test_top_layer_code_is_used_after_training(variational, digit_classifier) -> None:
    """Training routes information through z_2: resampling it (z_1's residual fixed) now changes the
    samples and their digit, where in the untrained model it changes almost nothing."""
    untrained, model = variational
    var0, flip0 = resample_effect(untrained, 2, digit_classifier)
    var, flip = resample_effect(model, 2, digit_classifier)
    assert var > 5 * var0 and flip > flip0 + 0.05, (var, var0, flip, flip0)


def test_upper_layer_changes_samples_more_globally_than_lower(variational, digit_classifier) -> None:
    """Cui et al.'s hierarchical-representation claim, with the measure of :func:`resample_effect`."""
    _, model = variational
    var_low, flip_low = resample_effect(model, 1, digit_classifier)
    var_top, flip_top = resample_effect(model, 2, digit_classifier)
    assert var_top > var_low and flip_top > flip_low, (var_top, var_low, flip_top, flip_low)
