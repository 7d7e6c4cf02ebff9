"""Model ``flow_ebm``: Langevin chains in the flow's latent space (neural transport) visit more gmm8 modes than
data-space Langevin on the same unnormalised density, from the same start; and the model learns."""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchbed.contracts import DataBundle, LogDensity
from benchbed.testing import bound_sampler, fit

PARAMS = {"transforms": 2, "hidden": (64, 64), "bins": 16, "energy_hidden": (64, 64), "flow_fraction": 0.95}
# Short latent chains while training keep the test fast; the mode count below runs its own chains.
ROLES = {"latent": {"n_steps": 10}}
CHAINS, K, CHUNK = 500, 100, 10


def run_chains(log_density: LogDensity, start: torch.Tensor, step_size: float,
               to_data: Callable[[torch.Tensor], torch.Tensor],
               nearest_mode: Callable[[torch.Tensor], torch.Tensor]) -> tuple[int, float]:
    """K Langevin steps (the suite's ``langevin`` sampler, role ``latent``) from ``start``.

    Returns:
        (modes holding >= 1% of the chains' final states, mean number of distinct modes each chain visited
        at the checkpoints every ``CHUNK`` steps).
    """
    sampler = bound_sampler("flow_ebm", "langevin")("latent", n_steps=CHUNK, step_size=step_size)
    state, visited = start.clone(), torch.zeros(len(start), 8, dtype=torch.bool)
    for _ in range(K // CHUNK):
        state = sampler.sample(log_density, state).z
        with torch.no_grad():
            k = nearest_mode(to_data(state))
        visited[k >= 0, k[k >= 0]] = True
    counts = torch.bincount(k[k >= 0], minlength=8)
    return int((counts >= CHAINS // 100).sum()), float(visited.sum(1).float().mean())


def test_latent_chains_cover_more_modes(
    gmm8: DataBundle,
    mmd: Callable[[torch.Tensor, torch.Tensor], float],
    gmm8_means: torch.Tensor,
    nearest_mode: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    torch.manual_seed(0)
    untrained, _ = fit("flow_ebm", gmm8, steps=2, batch_size=128, params=PARAMS, roles=ROLES)
    model, history = fit("flow_ebm", gmm8, steps=300, batch_size=128, params=PARAMS, roles=ROLES)
    with torch.no_grad():
        before, after = mmd(untrained.sample(1000), gmm8.test.x), mmd(model.sample(1000), gmm8.test.x)
    assert after < 0.35 * before, (before, after)
    assert history[-1]["f_data"] != 0.0  # the energy phase ran

    x0 = gmm8_means[:1].repeat(CHAINS, 1)  # every chain starts at the centre of mode 0
    with torch.no_grad():
        z0 = model.to_latent(x0)
    latent = run_chains(model.latent_log_density, z0, 0.3, model.from_latent, nearest_mode)
    data = {s: run_chains(model.data_log_density, x0, s, lambda x: x, nearest_mode) for s in (0.01, 0.03)}
    print(f"\nflow_ebm gmm8 mmd2 {before:.4f} -> {after:.5f}; (modes covered, modes visited per chain): "
          f"latent s=0.3 {latent}, data {data}")
    assert latent[0] >= 7, latent
    assert all(covered <= 2 for covered, _ in data.values()), data
    assert latent[1] > 2 * max(v for _, v in data.values()), (latent, data)
