"""hlebm and svebm training-iteration speed: fused chains (the default) against their own plain-autograd
loop (``engine.fused=False``), measured in the same process.

What changes between the two (``docs/models.md#hlebm``, ``#svebm``): with ``fused`` on, the prior and
posterior Langevin chains get log-densities whose gradient is written out layer by layer over the
hand-written MLP VJPs of :mod:`benchbed.blocks.fused` (one tape-free gradient evaluation per step),
and every network is frozen while the chains run (:func:`benchbed.blocks.chains.run_chains`); off,
the sampler differentiates the models' autograd closures with the weights left trainable (the code
before the change).  Both draw the same start points and noise, so they compute the same numbers up
to floating-point rounding (``tests/ebm/test_hlebm.py``, ``tests/ebm/test_svebm.py``); the learning
step after the chains is the same code in both.

Settings: the quick suite's (``leaderboards/quick/suite.toml``): batch 100, Langevin with 30 prior
and 20 posterior steps, the models' default sizes, on ``gmm8`` and ``digits``; ``hlebm_var`` is the
variational scheme (prior chains only, in residual space).

Protocol for a shared machine: two identically seeded models per configuration, one per engine
path; in each round both run ``ITERS`` training iterations, one after the other (the order
alternates between rounds), so that load changes hit both alike.  Reported: the median over rounds of
seconds per iteration of each, the ratio of those medians, and the median of the within-round
ratios; the same for the chains alone (``*_chains_s``: the prior, and for MLE the posterior, chain
runs of one iteration).

Run:  BENCH_THREADS=1 python -m pytest benchmarks/bench_multilayer_chains.py -p no:xdist --benchmark-only -s
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch

from benchbed.contracts import Batch, Budget, EngineOptions
from benchbed.testing import bound_sampler, build_model, load_dataset
from benchbed.training import setup_model

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
ITERS = 1  # training iterations per variant and round (short samples: load changes hit both alike)
BATCH = 100
ROLES = {"prior": {"n_steps": 30}, "posterior": {"n_steps": 20}}  # the quick suite's langevin roles before 300 steps
#: name -> (model, data set, hyperparameters); the quick suite's cells.
CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "hlebm_gmm8": ("hlebm", "gmm8", {}),
    "hlebm_digits": ("hlebm", "digits", {}),
    "hlebm_var_digits": ("hlebm", "digits", {"scheme": "variational"}),
    "svebm_digits": ("svebm", "digits", {}),
}


def make_model(config: str, fused: bool) -> tuple[Any, Batch]:
    """A set-up model (seed 0) with ``engine.fused`` on or off, and one training batch of the real data."""
    name, dataset, params = CONFIGS[config]
    bundle = load_dataset(dataset, seed=0)
    model = build_model(name, params)
    setup_model(model, bundle, Budget(400, BATCH), seed=0, device=torch.device("cpu"),
                sampler=bound_sampler(name, "langevin", None, ROLES), engine=EngineOptions(fused=fused))
    assert model.fused == fused
    y = None if bundle.train.y is None else bundle.train.y[:BATCH]
    return model, Batch(bundle.train.x[:BATCH], y, torch.arange(BATCH))


def chains_of(model: Any, batch: Batch) -> Callable[[], object]:
    """The chain runs of one training iteration: prior chains, and posterior chains for hlebm's MLE."""
    x_m = model.scale.to_model(batch.x)
    if getattr(model, "scheme", None) == "mle":
        return lambda: (model._prior_mcmc(BATCH), model._posterior_mcmc(x_m))
    return lambda: model._prior_mcmc(BATCH)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(THREADS)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_multilayer_chain_iteration(benchmark: Any, config: str) -> None:
    """Seconds per training iteration (and per iteration's chains) with the fused chains and with the
    plain autograd loop, interleaved in one process; ratio = plain / fused (> 1: fused is faster)."""
    load_before = os.getloadavg()[0]
    models = {"fused": make_model(config, True), "plain": make_model(config, False)}
    step = {k: 0 for k in models}
    times: dict[str, list[float]] = {f"{k}{what}": [] for k in models for what in ("", "_chains")}

    def timed(key: str, fn: Callable[[], Any], n: int) -> None:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        times[key].append((time.perf_counter() - t) / n)

    def train(k: str) -> None:
        model, batch = models[k]
        model.train_step(batch, step[k])
        step[k] += 1

    chains = {k: chains_of(*models[k]) for k in models}
    for k in models:  # warm-up (allocator, oneDNN primitives)
        train(k)
        chains[k]()
    rounds_done = [0]

    def one_round() -> None:
        order = ("fused", "plain") if rounds_done[0] % 2 == 0 else ("plain", "fused")
        rounds_done[0] += 1
        for k in order:
            timed(k, partial(train, k), ITERS)
        for k in order:
            timed(f"{k}_chains", chains[k], 1)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    med = {k: statistics.median(v) for k, v in times.items()}
    info: dict[str, float] = {"threads": THREADS, "rounds": ROUNDS, "iters_per_round": ITERS,
                              "load_before": load_before, "load_after": os.getloadavg()[0]}
    info.update({f"{k}_s_per_iter" if not k.endswith("_chains") else f"{k}_s": v for k, v in med.items()})
    for what in ("", "_chains"):
        info[f"ratio{what}_of_medians"] = med[f"plain{what}"] / med[f"fused{what}"]
        info[f"ratio{what}_median_within_round"] = statistics.median(
            p / f for p, f in zip(times[f"plain{what}"], times[f"fused{what}"], strict=True))
    benchmark.extra_info.update(info)
    print(f"\n[{config}] " + ", ".join(f"{k}={v:.4g}" for k, v in info.items()))
    # A regression guard, not the target: the fused chains do strictly less work per step, so they
    # must not be slower; on this shared machine round-to-round scatter is ~10%.
    assert info["ratio_median_within_round"] > 1.0
