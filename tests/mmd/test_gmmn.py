"""GMMN and GMMN+AE through the plugin interface: conformance, learning, capabilities."""

from __future__ import annotations

import math

import pytest
import torch

from benchbed.contracts import Budget
from benchbed.errors import NotApplicable
from benchbed.testing import (
    check_model,
    evaluate_metric,
    fit,
    load_dataset,
    load_registry_strict,
    make_eval_context,
)
from benchbed.training import setup_model, train

SMALL = {
    "gmmn": {"hidden": (16, 32)},
    "gmmn_ae": {"hidden": (16, 32), "ae_hidden": (32,), "code_dim": 8},
    "jgmmn": {"hidden": (16, 32)},
}


@pytest.mark.parametrize("dataset", ["gmm8", "digits"])
@pytest.mark.parametrize("name", ["gmmn", "gmmn_ae", "jgmmn"])
def test_conformance(name: str, dataset: str) -> None:
    check_model(name, dataset=dataset, params=SMALL[name])


def test_specs_have_no_dynamics_and_declared_capabilities() -> None:
    reg = load_registry_strict()
    caps = {
        "gmmn": {"sample"},
        "gmmn_ae": {"sample", "infer", "reconstruct"},
        "jgmmn": {"sample", "infer", "reconstruct"},
    }
    for name, expected in caps.items():
        spec = reg.model(name)
        assert spec.uses_sampler is False
        assert set(spec.factory.capabilities) == expected


def test_gmmn_variances_are_variances_of_the_data_scale() -> None:
    """Images: the official (2, ..., 80) scaled by D / 784; vectors: median heuristic."""
    digits = load_dataset("digits", seed=0)
    model, _ = fit("gmmn", digits, steps=1, batch_size=16, params=SMALL["gmmn"])
    expected = [v * 64 / 784 for v in (2, 5, 10, 20, 40, 80)]
    assert model.kernel_variances.tolist() == pytest.approx(expected)
    model, _ = fit("gmmn", digits, steps=1, batch_size=16, params={**SMALL["gmmn"], "variances": (3.0,)})
    assert model.kernel_variances.tolist() == [3.0]


def test_gmmn_learns_gmm8_and_covers_all_modes() -> None:
    bundle = load_dataset("gmm8", seed=0, n_train=2000, n_val=200, n_test=1000)
    params = {"hidden": (64, 128, 128), "lr": 5e-3, "decay_at": 0.8}
    untrained, _ = fit("gmmn", bundle, steps=0, params=params)
    model, history = fit("gmmn", bundle, steps=250, batch_size=128, params=params)
    settings = {"n_samples": 1000, "n_reference": 1000}
    before = evaluate_metric("mmd", make_eval_context(untrained, bundle), **settings).value
    after = evaluate_metric("mmd", make_eval_context(model, bundle), **settings).value
    assert after < before / 10, (before, after)
    assert history[-1]["loss"] < history[0]["loss"] / 2

    torch.manual_seed(1)
    with torch.no_grad():
        s = model.sample(2000)
    angles = torch.arange(8) * (2 * math.pi / 8)
    means = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)  # gmm8: radius 2, std 0.1
    near = torch.cdist(s, means) < 3 * 0.1
    per_mode = near.sum(0)
    assert (per_mode >= 20).all(), per_mode.tolist()  # every mode gets >= 1% of the samples
    # and the samples concentrate on the modes: a uniform spread over the disk of radius 2.5 would
    # put 8 * 0.3^2 / 2.5^2 = 11.5% of them within 3 sigma of a mode.
    assert near.any(1).float().mean() > 0.2


def test_gmmn_has_no_reconstruction() -> None:
    bundle = load_dataset("gmm8", seed=0, n_train=200, n_val=50, n_test=100)
    model, _ = fit("gmmn", bundle, steps=1, batch_size=32, params=SMALL["gmmn"])
    assert "reconstruct" not in model.capabilities and "infer" not in model.capabilities
    assert "reconstruct" in load_registry_strict().metric("recon_mse").requires  # -> n/a up front
    with pytest.raises(NotApplicable, match="reconstruct"):
        evaluate_metric("recon_mse", make_eval_context(model, bundle))


def test_gmmn_ae_learns_digits_and_freezes_the_autoencoder() -> None:
    bundle = load_dataset("digits", seed=0)
    params = {"hidden": (64, 128, 128), "ae_hidden": (256,), "ae_fraction": 0.5}
    untrained, _ = fit("gmmn_ae", bundle, steps=0, params=params)

    model = load_registry_strict().model("gmmn_ae").factory(**params)
    budget = Budget(steps=300, batch_size=100)
    setup_model(model, bundle, budget, seed=0, device=torch.device("cpu"))
    snapshots: dict[str, dict[str, torch.Tensor]] = {}

    def ae_state() -> dict[str, torch.Tensor]:
        enc = {f"enc.{k}": v.clone() for k, v in model.encoder.state_dict().items()}
        return enc | {f"dec.{k}": v.clone() for k, v in model.decoder.state_dict().items()}

    def on_step(step: int, losses: object) -> None:
        if step == model.ae_steps - 1:  # end of the AE phase
            snapshots["ae"] = ae_state()

    train(model, bundle, budget, seed=0, device=torch.device("cpu"), on_step=on_step)
    assert model.ae_steps == 150
    after = ae_state()
    assert all(torch.equal(snapshots["ae"][k], after[k]) for k in after), "the AE changed during the GMMN phase"

    x = bundle.test.x
    with torch.no_grad():
        mse0 = float(((untrained.reconstruct(x) - x) ** 2).mean())
        mse1 = float(((model.reconstruct(x) - x) ** 2).mean())
    assert mse1 < mse0 / 2, (mse0, mse1)
    settings = {"n_samples": 500, "n_reference": 350}
    m0 = evaluate_metric("mmd", make_eval_context(untrained, bundle), **settings).value
    m1 = evaluate_metric("mmd", make_eval_context(model, bundle), **settings).value
    assert m1 < m0 / 3, (m0, m1)
