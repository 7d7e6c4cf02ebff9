"""Model ``fce``: its importance-sampled log Z agrees with a quadrature of exp(u) on a 2-D grid, and it learns."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from benchbed.contracts import DataBundle
from benchbed.testing import fit

PARAMS = {"transforms": 2, "hidden": (32, 32), "bins": 8, "energy_hidden": (64, 64)}


def grid_log_partition(log_unnormalised: Callable[[torch.Tensor], torch.Tensor], lim: float = 6.0,
                       n: int = 1201) -> float:
    """log ∫ exp(u(x)) dx over [-lim, lim]^2 by the midpoint-free Riemann sum on an n x n grid (spacing 0.01).

    The EBM's Gaussian reference on standardised coordinates (gmm8's std is about 1.4) leaves a
    negligible mass outside |x| < 6, and the modes (std 0.1) span ten grid steps per std.
    """
    g = torch.linspace(-lim, lim, n)
    pts = torch.cartesian_prod(g, g)
    with torch.no_grad():
        u = torch.cat([log_unnormalised(p) for p in pts.split(100_000)]).double()
    return float(torch.logsumexp(u, 0)) + 2 * math.log(float(g[1] - g[0]))


def test_fce_log_partition_matches_quadrature_and_learns(
    gmm8: DataBundle, mmd: Callable[[torch.Tensor, torch.Tensor], float]
) -> None:
    results = {}
    for steps in (1, 250):
        torch.manual_seed(0)
        model, history = fit("fce", gmm8, steps=steps, batch_size=128, params=PARAMS)
        with torch.no_grad():
            samples = model.sample(1000)
        log_z, n, ess = model.ebm_log_partition(100_000)
        grid = grid_log_partition(model.log_unnormalised)
        results[steps] = (mmd(samples, gmm8.test.x), log_z, grid, ess, -model.c.item(), history[-1])
        assert abs(log_z - grid) < 0.05, (steps, log_z, grid, ess)
        ll = model.ebm_log_likelihood(gmm8.test.x[:100], n=20_000)
        assert ll.shape == (100,) and torch.isfinite(ll).all()
    print(f"\nfce gmm8 (mmd2, log Z IS, log Z grid, ESS, -c, last losses): {results}")
    assert results[250][0] < 0.35 * results[1][0], results
    assert results[250][5]["flow_nll"] < results[1][5]["flow_nll"] - 0.5, results
