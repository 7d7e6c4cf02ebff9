"""The synthetic data sets' exact densities: normalised, and consistent with their own samplers.

Two independent checks per 2-D density: (1) it integrates to 1 on a grid (midpoint rule), and
(2) the probability it puts on coarse bins matches the frequency of 50 000 fresh samples (total
variation below 0.05; sampling noise alone gives about 0.02).  A density that is normalised but
has the wrong shape fails (2); one that has the right shape but the wrong constant fails (1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.testing import load_registry_strict
from benchbed_datasets._base import generator

# name -> (parameters, half-width of the grid box, grid step).  Half-widths are multiples of BIN.
CASES = {
    "gmm8": ({}, 3.0, 0.025),
    "gmm25": ({}, 5.5, 0.025),
    "rings": ({}, 4.0, 0.025),
    # Wide noise around small rings: the radial Gaussian crosses r = 0, so the fold matters.  Its
    # 1/|x| peak at the origin defeats the Cartesian midpoint rule; test_rings_folded_... integrates it.
    "rings_folded": ({"n_rings": 2, "radius": 0.5, "std": 0.6}, 4.5, 0.025),
    "swissroll": ({}, 4.0, 0.05),
    "pinwheel": ({}, 5.0, 0.05),
}
BIN = 0.5  # coarse bin width for the histogram comparison


def _source(case: str):
    params, _, _ = CASES[case]
    name = case.split("_")[0]
    return load_registry_strict().dataset(name).factory(**params)


def _grid(half: float, step: float) -> tuple[torch.Tensor, int]:
    m = round(2 * half / step)
    centres = -half + step * (torch.arange(m, dtype=torch.float64) + 0.5)
    return torch.cartesian_prod(centres, centres), m


@pytest.mark.parametrize("case", sorted(CASES))
def test_density_integrates_to_one_and_matches_samples(case: str) -> None:
    src = _source(case)
    _, half, step = CASES[case]
    points, m = _grid(half, step)
    density = src.log_prob(points).exp().reshape(m, m)
    assert density.dtype == torch.float64
    if case != "rings_folded":
        assert abs(float(density.sum()) * step * step - 1.0) < 2e-3

    per_bin = round(BIN / step)
    mass = density.reshape(m // per_bin, per_bin, m // per_bin, per_bin).sum((1, 3)) * step * step
    x, _ = src.sample(50_000, generator(123))
    edges = np.linspace(-half, half, m // per_bin + 1)
    counts, _, _ = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=[edges, edges])
    tv = 0.5 * np.abs(counts / len(x) - mass.numpy()).sum()
    assert tv < 0.05, f"{case}: total variation {tv:.3f} between density and samples"


def test_rings_folded_density_integrates_to_one_in_polar_coordinates() -> None:
    """integral p(x) dx = integral_0^inf 2 pi r p(r u) dr for the rotation-invariant ring density;
    without the fold (mass of s < 0 dropped) this would be 1 - P(s < 0) ~ 0.88 here."""
    src = _source("rings_folded")
    step = 1e-4
    r = step * (torch.arange(round(8.0 / step), dtype=torch.float64) + 0.5)
    direction = torch.tensor([0.6, -0.8], dtype=torch.float64)
    density = src.log_prob(r[:, None] * direction).exp()
    assert abs(float((2 * math.pi * r * density).sum()) * step - 1.0) < 1e-6


def test_log_prob_keeps_dtype_and_batch_shape() -> None:
    for name in ("gmm8", "gmm25", "rings", "swissroll", "pinwheel"):
        src = load_registry_strict().dataset(name).factory()
        x = torch.randn(7, 2)
        lp = src.log_prob(x)
        assert lp.shape == (7,) and lp.dtype == torch.float32 and torch.isfinite(lp).all(), name
        assert src.log_prob(torch.zeros(0, 2)).shape == (0,), name


def test_gmm8_labels_are_the_nearest_mode_and_modes_are_where_stated() -> None:
    src = load_registry_strict().dataset("gmm8").factory(n_train=2000, n_val=10, n_test=10)
    bundle = src.load(seed=0)
    angles = torch.arange(8) * (2 * math.pi / 8)
    modes = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    nearest = torch.cdist(bundle.train.x, modes).argmin(1)
    assert torch.equal(nearest, bundle.train.y)
    # At a mode the density is that component's peak / 8 (the others are ~exp(-150) away).
    peak = -math.log(2 * math.pi * 0.1**2) - math.log(8)
    assert torch.allclose(bundle.log_prob(modes.double()), torch.full((8,), peak, dtype=torch.float64), atol=1e-9)


def test_swissroll_quadrature_matches_monte_carlo_over_t() -> None:
    """Independent estimate: p(x) = E_t N(x; m(t), std^2 I), t ~ U[t0, t1], with 400 000 draws of t."""
    src = load_registry_strict().dataset("swissroll").factory()
    x, _ = src.sample(5, generator(7))
    gen = torch.Generator().manual_seed(1)
    t = 1.5 * math.pi + 3 * math.pi * torch.rand(400_000, generator=gen, dtype=torch.float64)
    sq = ((x.double()[:, None, :] - src.curve(t)[None]) ** 2).sum(-1)
    mc = (torch.exp(-0.5 * sq / src.std**2) / (2 * math.pi * src.std**2)).mean(1)
    exact = src.log_prob(x.double()).exp()
    assert torch.allclose(exact, mc, rtol=0.03)


def test_pinwheel_density_matches_change_of_variables_with_autograd_jacobian() -> None:
    """At a sample x with known latent f and arm k, p(x) >= p(f) / (K |det dx/df|) (that preimage's
    share), with equality up to the other (far-away, negligible) preimages for almost every point."""
    src = load_registry_strict().dataset("pinwheel").factory()
    _, k, f = src.draw(300, generator(5))
    f = f.double()

    def forward(latent: torch.Tensor, arm: int) -> torch.Tensor:
        phi = 2 * math.pi * arm / src.n_arms + src.rate * latent[0].exp()
        c, s = phi.cos(), phi.sin()
        return src.scale * torch.stack([c * latent[0] - s * latent[1], s * latent[0] + c * latent[1]])

    own = []
    for i in range(len(f)):
        jac = torch.autograd.functional.jacobian(lambda z, arm=int(k[i]): forward(z, arm), f[i])
        log_pf = (
            torch.distributions.Normal(1.0, src.radial_std).log_prob(f[i, 0])
            + torch.distributions.Normal(0.0, src.tangential_std).log_prob(f[i, 1])
        )
        own.append(log_pf - torch.log(torch.det(jac).abs()) - math.log(src.n_arms))
    own_t = torch.stack(own)
    x = torch.stack([forward(f[i], int(k[i])) for i in range(len(f))])  # float64: the exact preimage is f
    assert torch.allclose(x.float(), src.draw(300, generator(5))[0], atol=1e-5)  # = the sampler's map
    lp = src.log_prob(x)
    assert (lp >= own_t - 1e-6).all()
    assert float((lp - own_t).median()) < 1e-6
    assert float((lp - own_t).quantile(0.9)) < 1e-3
