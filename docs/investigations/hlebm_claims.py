"""Why hlebm's outlier claim is not reproduced by the standard suite: the experiment behind
``docs/investigations.md`` (run by hand; not a test, not a benchmark).

``auprc``: train ``hlebm`` (or ``hlebm_var``) on ``mnist5k`` without digit 1, exactly as the standard
suite's entry does (the outlier protocol's held-out training: MLP networks, 2 000 steps of batch 100),
and score the whole test split with the model's anomaly score -log p(x, z) and with each of its terms,
to see which term ranks the held-out 1s:

* -log p(x | z_1), the reconstruction term (Gaussian, the model's sigma);
* -log p(z) = -(sum_l f_l(z_l) + log p_beta(z)), the joint prior, and its parts: the EBM terms
  -f_l(z_l) of each layer (and their sum) and the Gaussian hierarchy -log p_beta(z) (the conditionals
  p(z_l | z_{l+1}) and N(z_L; 0, I)).

z is the model's own ``infer(x)``: posterior Langevin for ``hlebm`` (at the suite's chain length and at
100 steps), the inference model's mean code for ``hlebm_var``, as Cui, Wu and Han (ICCV 2023) score.

Usage (from the repository root, one intra-op thread; about 20 minutes on an idle core)::

    PYTHONPATH=.:plugins python docs/investigations/hlebm_claims.py auprc --seed 0
    PYTHONPATH=.:plugins python docs/investigations/hlebm_claims.py auprc --seed 0 --model hlebm_var

Prints one line per score and one JSON line with every figure last.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from _outlier_scores import scorer  # docs/investigations/, the script's own folder

from benchbed import testing

#: The standard suite's entries (leaderboards/standard/suite.toml): hlebm at 10x the official rates,
#: hlebm_var at the official ones with the variational scheme.
SUITE_PARAMS: dict[str, dict[str, Any]] = {
    "hlebm": {"arch": "mlp", "g_lr": 1e-3, "cond_lr": 1e-3, "e_lr": 2e-4},
    "hlebm_var": {"arch": "mlp", "scheme": "variational"},
}
STEPS = 2000


def auprc(entry: str, seed: int, held_out: int) -> dict[str, Any]:
    """AUPRC / AUROC of the held-out digit with the full anomaly score and with each of its terms."""
    bundle = testing.load_dataset("mnist5k", seed=seed)
    start = time.perf_counter()
    model, _ = testing.fit("hlebm", bundle.hold_out((held_out,)), steps=STEPS, batch_size=100, seed=seed,
                           sampler="langevin", params=SUITE_PARAMS[entry])
    print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
    x, y = bundle.test.x, bundle.test.y
    positive = (y == held_out).numpy()
    out: dict[str, Any] = {"experiment": "auprc", "model": entry, "seed": seed, "held_out": held_out,
                           "base_rate": float(positive.mean())}

    score = scorer(positive, out)

    score("ink: -sum of pixels", -x.flatten(1).sum(1))
    settings: list[int | None] = [None, 100] if entry == "hlebm" else [None]
    for k in settings:
        tag = "suite's K" if k is None else f"K{k}"
        if k is not None:
            model.post_sampler.n_steps = k
        torch.manual_seed(7)
        z = model.infer(x).detach()
        with torch.no_grad():
            log_joint = model.log_joint(x, z)         # log p(x | z_1) + log p(z), log Z left out
            log_prior = model.prior.log_prob(z)       # sum_l f_l(z_l) + log p_beta(z)
            terms = model.prior.energy_terms(z)       # f_l(z_l), bottom layer first
            log_base = model.prior.base_log_prob(z)   # log p_beta(z): conditionals and N(z_L; 0, I)
        score(f"{tag}: -log p(x, z) (the model's score)", -log_joint)
        score(f"{tag}: -log p(x | z_1)", -(log_joint - log_prior))
        score(f"{tag}: -log p(z)", -log_prior)
        score(f"{tag}: -sum_l f_l(z_l)", -torch.stack(terms).sum(0))
        for layer, f in enumerate(terms, start=1):
            score(f"{tag}: -f_{layer}(z_{layer})", -f)
        score(f"{tag}: -log p_beta(z)", -log_base)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="experiment", required=True)
    a = sub.add_parser("auprc")
    a.add_argument("--model", choices=sorted(SUITE_PARAMS), default="hlebm")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--held-out", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(auprc(args.model, args.seed, args.held_out)))


if __name__ == "__main__":
    main()
