"""Why SRI's reconstruction claim is inconclusive on digits: the experiment behind
``docs/investigations.md`` (run by hand; not a test, not a benchmark).

``recon``: train ``sri`` (the learned step size) and the ``vae`` on ``digits`` as the standard suite does
(MLP networks, 2 000 steps of batch 100, the models' own defaults otherwise) and report the test
reconstruction MSE (data scale [0, 1], per pixel, as the ``recon_mse`` metric) of

* SRI's ``reconstruct``: g(z_K) for one short-run posterior sample z_K (the suite's K = 25), and the
  same at K = 100;
* SRI's posterior-mean reconstruction: g(z_K) averaged over 20 independent chains per example, which
  removes the sampling noise of one z_K but keeps the dynamics;
* the VAE's ``reconstruct``: g(mu(x)) from its encoder mean, and g(z) from one z ~ q(z | x);
* each model's observation noise sigma (the VAE learns one; SRI's is fixed), on the data scale.

The question: is SRI behind the VAE because its reconstruction is a posterior *sample* while the
VAE's comes from the posterior *mean*?

Usage (from the repository root, one intra-op thread)::

    PYTHONPATH=.:plugins python docs/investigations/sri_claims.py recon --seed 0

It prints one line per figure and one JSON line with every figure last.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from benchbed import testing

#: The standard suite's entries (leaderboards/standard/suite.toml): ``[models.sri]``, ``[models.vae]``.
SUITE_PARAMS: dict[str, dict[str, Any]] = {"sri": {"arch": "mlp"}, "vae": {}}
STEPS = 2000
MEAN_CHAINS = 20


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def recon(seed: int) -> dict[str, Any]:
    """Reconstruction MSE of SRI (sample, K = 100, posterior mean) and of the VAE (mean, sample)."""
    bundle = testing.load_dataset("digits", seed=seed)
    x = bundle.test.x
    out: dict[str, Any] = {"experiment": "recon", "seed": seed}

    def report(key: str, value: float) -> None:
        out[key] = value
        print(f"{key}: {value:.5f}", flush=True)

    start = time.perf_counter()
    sri, _ = testing.fit("sri", bundle, steps=STEPS, batch_size=100, seed=seed, sampler="short_run",
                         params=SUITE_PARAMS["sri"])
    print(f"sri trained in {time.perf_counter() - start:.0f} s", flush=True)
    # Working scale [-1, 1] -> data scale [0, 1] halves a standard deviation.
    report("sri_sigma_data", sri.obs_std / 2)
    torch.manual_seed(11)
    with torch.no_grad():
        report("sri_reconstruct_K25", _mse(sri.reconstruct(x), x))
        k = sri.posterior_sampler.n_steps
        sri.posterior_sampler.n_steps = 100
        report("sri_reconstruct_K100", _mse(sri.reconstruct(x), x))
        sri.posterior_sampler.n_steps = k
        mean = torch.stack([sri.reconstruct(x) for _ in range(MEAN_CHAINS)]).mean(0)
        report(f"sri_mean_of_{MEAN_CHAINS}_chains_K25", _mse(mean, x))

    start = time.perf_counter()
    vae, _ = testing.fit("vae", bundle, steps=STEPS, batch_size=100, seed=seed, params=SUITE_PARAMS["vae"])
    print(f"vae trained in {time.perf_counter() - start:.0f} s", flush=True)
    report("vae_sigma_data", float(vae._log_std().detach().exp()) / 2)
    torch.manual_seed(11)
    with torch.no_grad():
        report("vae_reconstruct_mean", _mse(vae.reconstruct(x), x))
        mu, logvar = vae._encode(vae.scale.to_model(x))
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        report("vae_reconstruct_one_sample", _mse(vae.scale.to_data(vae.decoder(z)), x))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=["recon"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(recon(args.seed)))


if __name__ == "__main__":
    main()
