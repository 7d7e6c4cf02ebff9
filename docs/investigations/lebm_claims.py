"""Why two of LEBM's claims are not reproduced by the standard suite: the experiments behind
``docs/investigations.md`` (run by hand; not a test, not a benchmark).

``recon``: train ``lebm`` on ``digits`` as the standard suite does (MLP networks, 2 000 steps of batch 100,
learning rates 1e-3 / 1e-4), with a chosen observation noise ``obs_std`` and latent size, and report the
test reconstruction MSE (data scale [0, 1], per pixel, as the ``recon_mse`` metric) with 20 (the suite's),
100 and 500 posterior Langevin steps at evaluation.

``samples``: train ``lebm`` on ``digits`` as the suite does and report the FD-domain of its samples (the
suite's ``fd_domain`` metric, 2 000 samples) with 0 (the Gaussian base N(0, I) alone, the EBM prior
ignored), 60 (the suite's and the official K0), 200 and 1 000 prior Langevin steps at evaluation, to
see whether the short-run prior chain or the learned prior itself makes the samples worse than ABP's.

``auprc``: train ``lebm`` on ``mnist5k`` without digit 1 (the outlier protocol's held-out training) and score
the whole test split with the model's anomaly score -log p(x, z) and with each of its terms, to see which
term ranks the held-out 1s.

Usage (from the repository root, one intra-op thread)::

    PYTHONPATH=.:plugins python docs/investigations/lebm_claims.py recon --obs-std 0.3 --seed 0
    PYTHONPATH=.:plugins python docs/investigations/lebm_claims.py samples --seed 0
    PYTHONPATH=.:plugins python docs/investigations/lebm_claims.py samples --seed 0 --lr-g 1e-4 --lr-e 2e-5
    PYTHONPATH=.:plugins python docs/investigations/lebm_claims.py auprc --seed 0

Each prints one JSON line with the figures last.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from _outlier_scores import scorer  # docs/investigations/, the script's own folder

from benchbed import testing

#: The standard suite's ``[models.lebm]`` entry (leaderboards/standard/suite.toml).
SUITE_PARAMS: dict[str, Any] = {"arch": "mlp", "lr_g": 1e-3, "lr_e": 1e-4}
STEPS = 2000


def _train(dataset: str, seed: int, params: dict[str, Any], hold_out: tuple[int, ...] = ()) -> tuple[Any, Any]:
    bundle = testing.load_dataset(dataset, seed=seed)
    variant = bundle.hold_out(hold_out) if hold_out else bundle
    start = time.perf_counter()
    model, _ = testing.fit("lebm", variant, steps=STEPS, batch_size=100, seed=seed, sampler="langevin",
                           params={**SUITE_PARAMS, **params})
    print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
    return model, bundle


def recon(seed: int, obs_std: float, latent_dim: int | None) -> dict[str, Any]:
    """Test reconstruction MSE at 20 / 100 / 500 evaluation-time posterior steps."""
    params: dict[str, Any] = {"obs_std": obs_std}
    if latent_dim is not None:
        params["latent_dim"] = latent_dim
    model, bundle = _train("digits", seed, params)
    out: dict[str, Any] = {"experiment": "recon", "seed": seed, **params}
    x = bundle.test.x
    for k in (20, 100, 500):
        model.posterior_sampler.n_steps = k
        torch.manual_seed(123)
        out[f"recon_mse_K{k}"] = float((model.reconstruct(x).detach() - x).pow(2).mean())
        print(k, out[f"recon_mse_K{k}"], flush=True)
    return out


def samples(seed: int, lr_g: float, lr_e: float) -> dict[str, Any]:
    """FD-domain of the trained model's samples at 0 / 60 / 200 / 1 000 evaluation-time prior steps.

    ``lr_g``, ``lr_e``: the learning rates (the suite's 1e-3 / 1e-4 by default; the official 1e-4 / 2e-5).
    """
    params = {"lr_g": lr_g, "lr_e": lr_e}
    model, bundle = _train("digits", seed, params)
    ctx = testing.make_eval_context(model, bundle, seed=seed)
    out: dict[str, Any] = {"experiment": "samples", "seed": seed, **params}
    for k in (0, 60, 200, 1000):
        model.prior_sampler.n_steps = k
        start = time.perf_counter()
        value = testing.evaluate_metric("fd_domain", ctx, n_samples=2000).value
        out[f"fd_domain_K0_{k}"] = value
        print(f"K0 = {k}: FD-domain {value:.1f} ({time.perf_counter() - start:.0f} s)", flush=True)
    return out


def auprc(seed: int, held_out: int) -> dict[str, Any]:
    """AUPRC / AUROC of the held-out digit with the full anomaly score and with each of its terms."""
    model, bundle = _train("mnist5k", seed, {}, (held_out,))
    x, y = bundle.test.x, bundle.test.y
    positive = (y == held_out).numpy()
    out: dict[str, Any] = {"experiment": "auprc", "seed": seed, "held_out": held_out,
                           "base_rate": float(positive.mean())}

    score = scorer(positive, out)

    score("ink: -sum of pixels", -x.flatten(1).sum(1))
    for k in (20, 100):
        model.posterior_sampler.n_steps = k
        torch.manual_seed(7)
        z = model.infer(x).detach()
        with torch.no_grad():
            log_lik = model.log_lik_m(model.scale.to_model(x), z)  # -||x - g(z)||^2 / (2 sigma^2) + const
            log_prior = model.log_prior(z)                          # f(z) + log N(z; 0, I)
            log_p0 = -0.5 * z.pow(2).sum(1)                         # log N(z; 0, I) + const
        score(f"K{k}: -log p(x, z) (the model's score)", -(log_lik + log_prior))
        score(f"K{k}: -log p(x | z)", -log_lik)
        score(f"K{k}: -log p_alpha(z)", -log_prior)
        score(f"K{k}: -f(z)", -(log_prior - log_p0))
        score(f"K{k}: |z|^2 / 2", -log_p0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="experiment", required=True)
    r = sub.add_parser("recon")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--obs-std", type=float, default=0.3)
    r.add_argument("--latent-dim", type=int, default=None)
    s = sub.add_parser("samples")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--lr-g", type=float, default=SUITE_PARAMS["lr_g"])
    s.add_argument("--lr-e", type=float, default=SUITE_PARAMS["lr_e"])
    a = sub.add_parser("auprc")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--held-out", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.experiment == "recon":
        result = recon(args.seed, args.obs_std, args.latent_dim)
    elif args.experiment == "samples":
        result = samples(args.seed, args.lr_g, args.lr_e)
    else:
        result = auprc(args.seed, args.held_out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
