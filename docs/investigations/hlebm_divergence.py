"""How hlebm's own mnist5k cell of seed 1 diverges in the standard suite (``docs/investigations.md``;
run by hand; not a test, not a benchmark).

It trains ``hlebm`` on ``mnist5k`` exactly as the standard suite's ``[models.hlebm]`` entry does (MLP
networks, 10x the official learning rates, batch 100, the cell's seed), for ``--steps`` steps (the suite's
cell failed at step 110), and prints the training log of every step: the EBM's values at posterior
(``f_pos``) and prior (``f_neg``) samples, the conditionals' contrastive loss ``loss_cond`` and the
generator's loss.

Usage (from the repository root, one intra-op thread; about a minute)::

    PYTHONPATH=.:plugins python docs/investigations/hlebm_divergence.py --seed 1 --steps 109
    PYTHONPATH=.:plugins python docs/investigations/hlebm_divergence.py --steps 400 --param cond_lr=1e-4

``--param NAME=VALUE`` (repeatable, a float) overrides one of the entry's hyperparameters; a run
that diverges stops with benchbed's ``Diverged`` error, which names the step and the loss.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import torch

from benchbed import testing

#: The standard suite's ``[models.hlebm]`` entry (leaderboards/standard/suite.toml).
SUITE_PARAMS: dict[str, Any] = {"arch": "mlp", "g_lr": 1e-3, "cond_lr": 1e-3, "e_lr": 2e-4}


def _short(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.5g}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=109)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    params = {**SUITE_PARAMS, **{k: float(v) for k, v in (p.split("=", 1) for p in args.param)}}
    torch.set_num_threads(1)
    bundle = testing.load_dataset("mnist5k", seed=args.seed)
    _, hist = testing.fit("hlebm", bundle, steps=args.steps, batch_size=100, seed=args.seed, sampler="langevin",
                          params=params)
    for record in hist:
        print(json.dumps({k: _short(v) for k, v in record.items()}))


if __name__ == "__main__":
    main()
