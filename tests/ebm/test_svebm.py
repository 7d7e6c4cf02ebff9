"""svebm: the MI term against a direct formula, the fused prior chains against plain autograd, and
semi-supervised learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.contracts import Batch, Budget, EngineOptions
from benchbed.testing import bound_sampler, build_model, fit, load_dataset
from benchbed.training import setup_model
from benchbed_ebm.svebm import mutual_information
from tests.ebm.conftest import assert_same_training

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


def _engine_pair(bundle):
    """Two identically initialised models (same seed): ``engine.fused`` on and off."""
    models = []
    for fused in (True, False):
        model = build_model("svebm", SMALL)
        setup_model(model, bundle, Budget(10, 32), seed=0, device=torch.device("cpu"),
                    sampler=bound_sampler("svebm", None, None, ROLES), engine=EngineOptions(fused=fused))
        models.append(model)
    assert models[0].fused and not models[1].fused
    return models


def test_fused_prior_value_and_gradient_equal_autograd(digits) -> None:
    model, _ = _engine_pair(digits)
    z = 2.0 * torch.randn(16, model.latent_dim, generator=torch.Generator().manual_seed(1))
    zr = z.clone().requires_grad_(True)
    ref = model.log_prior(zr)
    (g_ref,) = torch.autograd.grad(ref.sum(), zr)
    with torch.no_grad():
        value, grad = model._prior_grad_fn()(z, True, True)
        _, grad_only = model._prior_grad_fn()(z, False, True)
    assert torch.allclose(value, ref.detach(), rtol=1e-5, atol=1e-5)
    assert torch.allclose(grad, g_ref, rtol=1e-5, atol=1e-5) and torch.equal(grad, grad_only)


def test_fused_and_plain_engines_give_the_same_chains_and_training(digits) -> None:
    """Same seed, ``engine.fused`` on and off: the same prior chains up to rounding, the same training
    steps, and f trainable again after the fused chains with no gradient left on it."""
    fused, plain = _engine_pair(digits)
    torch.manual_seed(7)
    a = fused._prior_mcmc(32)
    torch.manual_seed(7)
    b = plain._prior_mcmc(32)
    assert not a.requires_grad and torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
    assert all(p.requires_grad and p.grad is None for p in fused.ebm.parameters())
    batch = Batch(digits.train.x[:32], digits.train.y[:32], torch.arange(32))
    assert_same_training(fused, plain, batch)


def test_svebm_learns_digits_with_10_labels_per_class(digits, mmd2) -> None:
    untrained, _ = fit("svebm", digits, steps=0, params=SMALL, roles=ROLES)
    model, _ = fit("svebm", digits, steps=250, params=SMALL, roles=ROLES)
    assert model.fused  # the default engine: this test covers the fused chains
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


def test_encoder_dropout_is_the_official_and_acts_in_training_only(digits) -> None:
    model, _ = fit("svebm", digits, steps=0, params=SMALL, roles=ROLES)
    drops = [m for m in model.enc.modules() if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in drops] == [0.5, 0.5]  # after both hidden layers, as the official encoder
    x = digits.test.x[:50]
    model.eval()
    assert torch.equal(model.classify(x), model.classify(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model.enc(x.flatten(1)), model.enc(x.flatten(1)))
    off, _ = fit("svebm", digits, steps=0, params={**SMALL, "enc_dropout": 0.0}, roles=ROLES)
    assert not any(isinstance(m, torch.nn.Dropout) for m in off.enc.modules())


@pytest.mark.parametrize("model", ["svebm", "svebm_supervised"])
def test_more_labels_than_the_data_holds_is_refused_before_training(tmp_path, capsys, model: str) -> None:
    """The model's check_data hook (called by validate and run before training, like the accuracy
    metric's): asking for more labels per class than digits' rarest class holds is an error naming the
    entry, not a run that silently uses every label."""
    from benchbed import cli

    suite = tmp_path / "suite.toml"
    suite.write_text(f'name = "sv"\nseeds = [0]\n[budget]\nsteps = 2\nbatch_size = 20\n[datasets.digits]\n'
                     f"[models.{model}]\nn_labels_per_class = 100000\n[metrics.recon_mse]\n")
    assert cli.main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert f"[models.{model}] on data set 'digits': n_labels_per_class = 100000, but the training split of " \
           "'digits' holds only" in err
