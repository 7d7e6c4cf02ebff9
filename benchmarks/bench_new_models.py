"""Seconds per training step of the quick suite's slowest models (``flow_ebm``, ``short_run_ebm``, ``fce``,
``flow``): the engine's fused paths against the reference paths, measured in the same process.

Settings of ``leaderboards/quick/suite.toml`` when this benchmark was written (the suite now runs 300
steps; the per-step figures do not depend on it): batch 100 and a 400-step budget; ``flow_ebm``'s latent
chains 10 Langevin steps (its first 240 steps train the flow, the other 160 the energy: the two phases
are timed apart and combined in the per-cell estimate), ``short_run_ebm`` 20 chain steps; the models'
defaults otherwise; ``gmm8`` and ``digits`` as the registry loads them; one intra-op thread (a cell of
the suite run with ``--jobs 2`` on two cores).

``EngineOptions(fused=False)`` is the reference: the code as it was before the fused paths (zuko's own
flow objects, one autograd pass per Langevin step, torch's default Adam), still reachable as the engine's
plain path.  The default engine takes the fused paths (see each model module's docstring): the same
computation to floating-point rounding (``tests/flows/test_engine_fused.py``,
``tests/ebm/test_short_run_ebm.py``).

Each round times ``STEPS`` training steps of the reference model, then of the fused one (interleaved,
so load on a shared machine hits both alike); a figure is the median over rounds of the seconds per
step, a speedup the median of the within-round ratios.  Wall-clock time is what a suite run sees; the
thread's CPU time is also reported because it is less sensitive to other processes.

Run:  OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_new_models.py -p no:xdist --benchmark-only -s
 or:  OMP_NUM_THREADS=1 python benchmarks/bench_new_models.py [--rounds N] [--models flow_ebm ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
import torch

from benchbed.contracts import Batch, Budget, DataBundle, EngineOptions
from benchbed.testing import bound_sampler, build_model, load_dataset
from benchbed.training import setup_model

THREADS = int(os.environ.get("BENCH_THREADS", "1"))
BATCH = 100
BUDGET = 400
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
STEPS = 3  # training steps per engine per round


@dataclass(frozen=True)
class Case:
    """One timed configuration: a model on a data set, in one training phase."""

    model: str
    dataset: str
    phase: str = "train"  # flow_ebm: "flow" (steps < 240) or "energy"
    params: dict[str, Any] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.model}-{self.dataset}" + ("" if self.phase == "train" else f"-{self.phase}")


CASES = [
    Case(model, dataset, phase, params, roles)
    for model, phases, params, roles in [
        ("flow_ebm", ("flow", "energy"), {}, {"latent": {"n_steps": 10}}),
        ("short_run_ebm", ("train",), {"n_steps": 20}, {}),
        ("fce", ("train",), {}, {}),
        ("flow", ("train",), {}, {}),
    ]
    for dataset in ("gmm8", "digits")
    for phase in phases
]


@cache
def _bundle(name: str) -> DataBundle:
    return load_dataset(name, seed=0)


def make(case: Case, fused: bool | None) -> Callable[[], None]:
    """``STEPS`` training steps of the case's model, set up with the quick suite's seed and budget."""
    bundle = _bundle(case.dataset)
    model = build_model(case.model, case.params)
    spec_sampler = "langevin" if case.model in ("flow_ebm", "short_run_ebm") else None
    sampler = bound_sampler(case.model, spec_sampler, roles=case.roles) if spec_sampler else None
    setup_model(model, bundle, Budget(BUDGET, BATCH), seed=0, device=torch.device("cpu"), sampler=sampler,
                engine=EngineOptions(fused=fused))
    batch = Batch(bundle.train.x[:BATCH], None, torch.arange(BATCH))
    step = model.flow_steps if case.phase == "energy" else 0

    def run() -> None:
        for _ in range(STEPS):
            model.train_step(batch, step)

    return run


def measure(case: Case, rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds per step (wall and thread CPU) of both engines and the fused speedup (module docstring)."""
    torch.set_num_threads(THREADS)
    runs = {"reference": make(case, False), "fused": make(case, None)}
    for run in runs.values():  # warm-up
        run()
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for key, run in runs.items():
            t_wall, t_cpu = time.perf_counter(), time.thread_time()
            run()
            cpu[key].append((time.thread_time() - t_cpu) / STEPS)
            wall[key].append((time.perf_counter() - t_wall) / STEPS)
    out = {f"{k}_s_per_step": statistics.median(v) for k, v in wall.items()}
    out.update({f"{k}_cpu_s_per_step": statistics.median(v) for k, v in cpu.items()})
    out["speedup"] = statistics.median(r / f for r, f in zip(wall["reference"], wall["fused"], strict=True))
    out["speedup_cpu"] = statistics.median(r / f for r, f in zip(cpu["reference"], cpu["fused"], strict=True))
    return out


def cell_seconds(results: dict[str, dict[str, float]], model: str, dataset: str, engine: str) -> float:
    """Training seconds of one 400-step quick-suite cell from the per-step figures (flow_ebm: 240 flow-phase
    steps and 160 energy-phase steps)."""
    key = f"{engine}_s_per_step"
    if model == "flow_ebm":
        flow, energy = results[f"{model}-{dataset}-flow"][key], results[f"{model}-{dataset}-energy"][key]
        n_flow = round(0.6 * BUDGET)
        return n_flow * flow + (BUDGET - n_flow) * energy
    return BUDGET * results[f"{model}-{dataset}"][key]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_seconds_per_step(benchmark: Any, case: Case) -> None:
    """The fused engine is never slower than the reference (a regression guard, not the target: on a
    shared machine repeated runs scatter by about +-10%)."""
    load_before = os.getloadavg()[0]
    info: dict[str, float] = {"threads": THREADS, "load_before": load_before, **measure(case)}
    fused_run = make(case, None)
    benchmark.pedantic(fused_run, rounds=1, warmup_rounds=0)
    info["load_after"] = os.getloadavg()[0]
    benchmark.extra_info.update(info)
    print(f"\n[{case.name}] " + ", ".join(f"{k}={v:.4g}" for k, v in info.items()))
    assert info["speedup_cpu"] > 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--models", nargs="*", default=None, help="only these models")
    args = parser.parse_args()
    cases = [c for c in CASES if args.models is None or c.model in args.models]
    results: dict[str, dict[str, float]] = {}
    print(f"threads={THREADS} rounds={args.rounds} steps/round={STEPS} load={os.getloadavg()[0]:.2f}")
    print(f"{'case':28s} {'reference s/step':>17s} {'fused s/step':>13s} {'speedup':>8s} {'(cpu)':>6s}")
    for case in cases:
        r = measure(case, args.rounds)
        results[case.name] = r
        print(f"{case.name:28s} {r['reference_s_per_step']:17.4f} {r['fused_s_per_step']:13.4f} "
              f"{r['speedup']:8.2f} {r['speedup_cpu']:6.2f}", flush=True)
    print(f"\nper 400-step cell (s), load={os.getloadavg()[0]:.2f}")
    for model in dict.fromkeys(c.model for c in cases):
        for dataset in ("gmm8", "digits"):
            try:
                ref, fus = (cell_seconds(results, model, dataset, e) for e in ("reference", "fused"))
            except KeyError:
                continue
            print(f"{model + '-' + dataset:28s} {ref:17.1f} {fus:13.1f} {ref / fus:8.2f}")


if __name__ == "__main__":
    main()
