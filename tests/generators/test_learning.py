"""Each generator-family model learns on a tiny budget: reconstruction error and the MMD of its samples
to the test data fall well below those of the same model untrained (same seed, zero steps)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchbed.testing import fit

# (model, data set, params, steps, batch size, per-role sampler settings): small networks and few
# dynamics steps so that each case runs in a few seconds on one thread.
SMALL_MLP = {"hidden": (64, 64)}
CASES: list[tuple[str, str, dict[str, Any], int, dict[str, dict[str, Any]]]] = [
    ("vae", "gmm8", {"latent_dim": 2, "lr": 3e-3, **SMALL_MLP}, 600, {}),
    ("vae", "digits", {"latent_dim": 8, "lr": 3e-3, **SMALL_MLP}, 300, {}),
    (
        "abp",
        "gmm8",
        {"latent_dim": 2, "obs_std": 0.1, "lr": 3e-3, "n_steps": 10, "step_size": 0.05, **SMALL_MLP},
        300,
        {},
    ),
    ("abp", "digits", {"latent_dim": 8, "lr": 3e-3, "n_steps": 10, **SMALL_MLP}, 150, {}),
    (
        "sri",
        "gmm8",
        {"latent_dims": (2,), "obs_std": 0.1, "lr": 3e-3, "n_steps": 10, "learn_every": 10, **SMALL_MLP},
        300,
        {"posterior": {"lr": 0.1}},
    ),
    (
        "sri",
        "digits",
        {"latent_dims": (4, 4), "lr": 3e-3, "n_steps": 10, "learn_every": 10, **SMALL_MLP},
        150,
        {"posterior": {"lr": 0.1}},
    ),
    (
        "lebm",
        "gmm8",
        {
            "latent_dim": 2,
            "obs_std": 0.1,
            "lr_g": 3e-3,
            "lr_e": 1e-3,
            "prior_steps": 20,
            "posterior_steps": 10,
            "posterior_step_size": 0.05,
            "energy_hidden": (32, 32),
            **SMALL_MLP,
        },
        200,
        {},
    ),
    (
        "lebm",
        "digits",
        {
            "latent_dim": 8,
            "lr_g": 3e-3,
            "lr_e": 1e-3,
            "prior_steps": 20,
            "posterior_steps": 10,
            "energy_hidden": (32, 32),
            **SMALL_MLP,
        },
        150,
        {},
    ),
]


def _scores(model: Any, data: Any, mmd: Any) -> tuple[float, float]:
    torch.manual_seed(123)
    x = data.test.x[:300]
    with torch.no_grad():
        recon = float((model.reconstruct(x) - x).pow(2).mean())
        sample_mmd = mmd(model.sample(300), x)
    return recon, sample_mmd


@pytest.mark.parametrize(("name", "dataset", "params", "steps", "roles"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_model_learns(
    name: str,
    dataset: str,
    params: dict[str, Any],
    steps: int,
    roles: dict[str, dict[str, Any]],
    request: pytest.FixtureRequest,
    mmd: Any,
) -> None:
    data = request.getfixturevalue(dataset)
    untrained, _ = fit(name, data, steps=0, batch_size=100, seed=0, params=params, roles=roles)
    trained, history = fit(name, data, steps=steps, batch_size=100, seed=0, params=params, roles=roles)
    recon0, mmd0 = _scores(untrained, data, mmd)
    recon1, mmd1 = _scores(trained, data, mmd)
    print(f"{name}/{dataset}: recon {recon0:.4f} -> {recon1:.4f}, MMD^2 {mmd0:.4f} -> {mmd1:.4f}")
    assert recon1 < 0.5 * recon0, f"{name} on {dataset}: reconstruction {recon0:.4g} -> {recon1:.4g}"
    assert mmd1 < 0.5 * mmd0, f"{name} on {dataset}: sample MMD^2 {mmd0:.4g} -> {mmd1:.4g}"
