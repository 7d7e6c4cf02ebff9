"""Conformance, checkpoints, densities and model-specific behaviour of VAE, ABP, SRI and LEBM."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

from benchbed.contracts import Batch, Budget, DataBundle, DatasetInfo, Split
from benchbed.testing import bound_sampler, build_model, check_model, fit
from benchbed.training import setup_model, train

SMALL: dict[str, dict[str, Any]] = {
    "vae": {"latent_dim": 2, "hidden": (32, 32)},
    "abp": {"latent_dim": 2, "hidden": (32, 32), "n_steps": 5},
    "sri": {"latent_dims": (2, 2), "hidden": (32, 32), "n_steps": 5},
    "lebm": {"latent_dim": 2, "hidden": (32, 32), "energy_hidden": (16, 16), "prior_steps": 5, "posterior_steps": 5},
}


@pytest.mark.parametrize("dataset", ["gmm8", "digits"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_conformance(name: str, dataset: str) -> None:
    check_model(name, dataset=dataset, params=SMALL[name])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_checkpoint_resume_continues_identically(name: str, digits: Any) -> None:
    """Train 6 steps, checkpoint, train 4 more; a fresh model restored from the checkpoint and given
    the same RNG state trains the same 4 steps to bit-identical weights (and ABP chains)."""
    params, budget = SMALL[name], Budget(steps=10, batch_size=50)

    def fresh(seed: int) -> Any:
        model = build_model(name, params)
        return setup_model(
            model, digits, budget, seed=seed, device=torch.device("cpu"), sampler=bound_sampler(name, None)
        )

    a = fresh(0)
    train(a, digits, Budget(6, 50), seed=0, device=torch.device("cpu"))
    state = copy.deepcopy(a.checkpoint())
    rng = torch.get_rng_state()
    train(a, digits, budget, seed=0, device=torch.device("cpu"), start_step=6)

    b = fresh(1)
    b.restore(state)
    torch.set_rng_state(rng)
    train(b, digits, budget, seed=0, device=torch.device("cpu"), start_step=6)
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), f"{name}: {key} differs after resuming"
    for key, va in a.extra_state().items():
        assert torch.equal(va, b.extra_state()[key]), f"{name}: extra state {key} differs"
    changed = [k for k, v in a.state_dict().items() if not torch.equal(v, state["module"][k])]
    assert changed, "training after the checkpoint changed nothing (the comparison would be vacuous)"


def test_lebm_runs_with_hmc(gmm8: Any) -> None:
    """The sampler axis swaps LEBM's dynamics: prior and posterior chains become HMC."""
    roles = {"prior": {"n_steps": 3}, "posterior": {"n_steps": 3}}
    model, history = fit(
        "lebm",
        gmm8,
        steps=4,
        batch_size=50,
        params=SMALL["lebm"],
        sampler="hmc",
        sampler_params={"n_leapfrog": 2},
        roles=roles,
    )
    assert type(model.prior_sampler).__name__ == "HMC" and type(model.posterior_sampler).__name__ == "HMC"
    assert all(math.isfinite(v) for v in history[-1].values())
    with torch.no_grad():
        assert torch.isfinite(model.sample(16)).all()
        assert model.infer(gmm8.test.x[:16]).shape == (16, 2)


def test_abp_updates_only_the_visited_chains(digits: Any) -> None:
    model, _ = fit("abp", digits, steps=0, params=SMALL["abp"])
    before = model.chains.clone()
    idx = torch.arange(10, 30)
    model.train_step(Batch(digits.train.x[idx], None, idx), 0)
    moved = (model.chains != before).any(1)
    assert moved[idx].all() and not moved[30:].any() and not moved[:10].any()


@pytest.mark.parametrize(
    ("params", "sampler_params"),
    [({"persistent": False}, {}), ({}, {"persistent": False})],
    ids=["model-param", "suite-sampler-param"],
)
def test_abp_non_persistent_leaves_the_chain_bank_alone(
    params: dict[str, Any], sampler_params: dict[str, Any], digits: Any
) -> None:
    untrained, _ = fit("abp", digits, steps=0, params={**SMALL["abp"], **params}, sampler_params=sampler_params)
    model, _ = fit("abp", digits, steps=3, params={**SMALL["abp"], **params}, sampler_params=sampler_params)
    assert model.posterior_sampler.persistent is False
    assert torch.equal(model.chains, untrained.chains)


def test_sri_learns_its_step_size_and_multilayer_latents(gmm8: Any) -> None:
    params = {**SMALL["sri"], "obs_std": 0.1, "learn_every": 1, "step_size": 0.01}
    model, history = fit("sri", gmm8, steps=20, batch_size=50, params=params, roles={"posterior": {"lr": 0.1}})
    # From a far-too-small step the KL gradient must increase s (the chains barely move otherwise).
    assert history[-1]["step_size"] > 0.015
    assert "step_size" in model.optimizers
    with torch.no_grad():
        z = model.infer(gmm8.test.x[:8])
    assert z.shape == (8, 4) and model.log_prior(z).shape == (8,)


def test_vae_iwae_matches_quadrature(gmm8: Any) -> None:
    """log_joint is a proper density: the IWAE estimate with the encoder proposal approaches the
    marginal log p(x) computed by grid quadrature over the 2-D latent (and stays below it)."""
    model, _ = fit("vae", gmm8, steps=200, params={"latent_dim": 2, "hidden": (32, 32), "lr": 3e-3})
    x = gmm8.test.x[:4]
    grid = torch.linspace(-7, 7, 281)
    zz = torch.cartesian_prod(grid, grid)  # [G, 2]
    cell = float((grid[1] - grid[0]) ** 2)
    torch.manual_seed(0)
    with torch.no_grad():
        for i in range(x.shape[0]):
            xi = x[i : i + 1].expand(zz.shape[0], -1)
            quad = float(torch.logsumexp(model.log_joint(xi, zz), 0)) + math.log(cell)
            q = model.proposal(x[i : i + 1])
            zs = q.sample((5000,)).squeeze(1)
            xs = x[i : i + 1].expand(zs.shape[0], -1)
            log_w = model.log_joint(xs, zs) - q.log_prob(zs.unsqueeze(1)).squeeze(1)
            iwae = float(torch.logsumexp(log_w, 0)) - math.log(zs.shape[0])
            assert iwae < quad + 0.02 and abs(iwae - quad) < 0.1, f"x {i}: IWAE {iwae:.4f} vs quadrature {quad:.4f}"


def test_image_log_joint_is_a_data_scale_density(digits: Any) -> None:
    """log p(x|z) of [0,1] images equals an independent N(x; (g(z)+1)/2, (sigma/2)^2) density."""
    model, _ = fit("abp", digits, steps=0, params=SMALL["abp"])
    x, z = digits.test.x[:5], torch.randn(5, 2)
    with torch.no_grad():
        mean = (model.generator(z) + 1) / 2
        ref = torch.distributions.Normal(mean, model.obs_std / 2).log_prob(x).flatten(1).sum(1)
        ref = ref + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
        assert torch.allclose(model.log_joint(x, z), ref, atol=1e-3)


class _LinearEnergy(nn.Module):
    """f(z) = a.z + c, so Z = E_{N(0,I)} exp f(z) = exp(c + |a|^2 / 2) in closed form."""

    def __init__(self, a: torch.Tensor, c: float) -> None:
        super().__init__()
        self.a, self.c = nn.Parameter(a), c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.a + self.c


def test_lebm_log_partition_and_log_prior_closed_form(gmm8: Any) -> None:
    model, _ = fit("lebm", gmm8, steps=0, params=SMALL["lebm"])
    a, c = torch.tensor([0.6, -0.3]), 0.7
    model.energy = _LinearEnergy(a, c)
    torch.manual_seed(0)
    value, count, ess = model.log_partition(200_000)
    assert count == 200_000
    assert abs(value - (c + 0.5 * float(a @ a))) < 0.01
    # w = exp(a.z + c), z ~ N(0, I): E[w]^2 / E[w^2] = exp(-|a|^2)
    assert ess / count == pytest.approx(math.exp(-float(a @ a)), rel=0.03)
    z = torch.randn(6, 2)
    ref = z @ a + c + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(model.log_prior(z).detach(), ref, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("vae", {"latent_dim": 8, "hidden": (32, 32)}),
        (
            "lebm",
            {
                "latent_dim": 8,
                "hidden": (64, 64),
                "energy_hidden": (16, 16),
                "prior_steps": 5,
                "posterior_steps": 10,
                "lr_g": 3e-3,
            },
        ),
    ],
)
def test_anomaly_score_ranks_noise_above_digits(name: str, params: dict[str, Any], digits: Any) -> None:
    model, _ = fit(name, digits, steps=100, params=params)
    torch.manual_seed(0)
    with torch.no_grad():
        inliers = model.anomaly_score(digits.test.x[:100])
        noise = model.anomaly_score(torch.rand(100, 1, 8, 8))
    assert float(noise.mean()) > float(inliers.mean())


def test_lebm_ref32_architecture(digits: Any) -> None:
    """The reference 32x32 generator (ConvT 1->4->8->16->32, tanh) trains and samples in [0, 1];
    asking for it on other shapes is an error naming the parameter."""
    x = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    split = Split(x, torch.zeros(40, dtype=torch.long))
    info = DatasetInfo(name="img32", shape=(3, 32, 32), kind="image", n_classes=1)
    bundle = DataBundle(info=info, train=split, val=split, test=split)
    params = {"latent_dim": 8, "arch": "ref32", "ngf": 4, "prior_steps": 3, "posterior_steps": 3}
    model, history = fit("lebm", bundle, steps=2, batch_size=20, params=params)
    assert all(isinstance(m, torch.nn.ConvTranspose2d) for m in list(model.generator.net)[::2])
    with torch.no_grad():
        s = model.sample(5)
    assert s.shape == (5, 3, 32, 32) and 0 <= float(s.min()) and float(s.max()) <= 1
    assert all(math.isfinite(v) for v in history[-1].values())
    with pytest.raises(ValueError, match="ref32"):
        fit("lebm", digits, steps=0, params={"arch": "ref32"})


def test_dynamics_models_chunk_large_requests(monkeypatch: pytest.MonkeyPatch, gmm8: Any) -> None:
    import benchbed.blocks.latent as base

    monkeypatch.setattr(base, "EVAL_CHUNK", 3)
    model, _ = fit("lebm", gmm8, steps=0, params=SMALL["lebm"])
    with torch.no_grad():
        assert model.sample(7).shape == (7, 2)
        assert model.infer(gmm8.test.x[:7]).shape == (7, 2)
