"""LEBM training-iteration time side by side with the official code itself (issue 19).

The official latent EBM code (``train_svhn.py`` of https://github.com/bpucla/latent-space-EBM-prior)
is not vendored: bring it into a scratch folder and give its path in ``BENCHBED_OFFICIAL_LEBM``::

    git clone https://github.com/bpucla/latent-space-EBM-prior /tmp/official_lebm
    BENCHBED_OFFICIAL_LEBM=/tmp/official_lebm .venv/bin/python -m pytest benchmarks/bench_lebm_official.py \\
        -p no:xdist --benchmark-only -s
    # or as a script:
    BENCHBED_OFFICIAL_LEBM=/tmp/official_lebm .venv/bin/python benchmarks/bench_lebm_official.py

Without the variable (or without ``train_svhn.py`` under it) the benchmark is skipped.

**What runs.**  The official file is imported as a module, unchanged, and its own ``train()`` runs
its own training loop (its chains, learning steps, printouts, schedulers) with its own argument
defaults, except for what this benchmark sets through ``train``'s own override dictionary
(``args_job``, as ``pygrid`` does): the epoch count, ``nc``, and the intervals of its plots, stats,
checkpoints and FID (so that epoch ends cost little wall time; they are never timed anyway).
Module-level replacements, made on the imported module object only:

* ``get_dataset``: random images in [-1, 1] (the arithmetic per iteration does not depend on pixels);
* ``set_gpu``: a no-op (it calls ``torch.cuda.set_device``; the run is on the CPU);
* ``setup_logging``: the official one with ``console=False`` (its log still goes to its file);
* ``_netG`` (digits configuration only): an MLP generator 100-256-256-64 (LeakyReLU 0.2, tanh), the
  same network benchbed builds (``benchbed.blocks.nets.build_generator``), taking the official
  ``[B, nz, 1, 1]`` latents; the official ``weights_init_xavier`` leaves its Linear layers at
  PyTorch's default init, as benchbed does.
* ``torch.utils.data.DataLoader`` (during ``train()`` only): an iterable over fixed batches of the
  data set that times the loop and interleaves benchbed's steps (below).

Import-time workarounds (the file itself unchanged): ``fid_v2_tf_cpu`` (FID, imported at module
level) needs TensorFlow, which is not installed: a stub module stands in for it when TensorFlow is
missing (FID is never computed here).  ``pygrid`` is imported from the official folder.  Nothing else
was needed with torch 2.14: ``torch.autograd.Variable``, ``torch.nn.utils.spectral_norm`` and
``ExponentialLR.step(epoch=...)`` still work (the last one with deprecation warnings).

**Timing, interleaved.**  Each epoch of the official loop is one round.  After every ``BENCH_BLOCK``
official iterations (5; ref32: 3) the loader runs as many consecutive benchbed ``lebm.train_step``
calls at the same configuration (digits: MLP generator 100-256-256-64; ref32: the official 32x32
ConvT generator, ngf 64; both: energy MLP 100-200-200-1 GELU, batch 100, K0 = 60 at s0 = 0.4, K1 = 20
at s1 = 0.1, sigma 0.3), so that load on a shared machine hits both alike while each side runs
back to back, as in training.  An official iteration is the time from the loader handing out a batch
to the loop asking for the next one; benchbed's steps run inside the loader, outside that interval.
The first iteration of every block, on either side, is a lead-in and is not timed, and so is the
official iteration 0 of every epoch (it logs and runs extra passes); epoch 0 is warm-up for both.
Around each benchbed block there is a pause of ``BENCH_SETTLE_S`` (0.03 s, not timed): libgomp's
idle workers spin for milliseconds after a parallel region.  Both run in this process with
``torch.set_num_threads(BENCH_THREADS)`` (default 2).

On a loaded machine the official loop (every operation on a two-thread OpenMP team) slows down far
more than benchbed's (two chain sets on one intra-op thread each): the ratio is only meaningful on an
otherwise quiet machine; the load average before and after is printed.

Environment: ``BENCH_THREADS`` (2), ``BENCH_ROUNDS`` (5), ``BENCH_ITERS`` (official iterations per
round; 20 digits, 3 ref32), ``BENCH_BLOCK``, ``BENCH_SETTLE_S`` (0.03); ``BENCH_LEBM_REF32=1`` also runs the 32x32
configuration (about 8 s per official + benchbed pair of iterations).  The script form takes the
configurations as arguments: ``... bench_lebm_official.py digits ref32``.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from benchbed.blocks.nets import build_generator
from benchbed.contracts import Batch, Budget, DataBundle, DatasetInfo, Split
from benchbed.testing import bound_sampler, build_model
from benchbed.training import setup_model

ENV = "BENCHBED_OFFICIAL_LEBM"
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S", "0.03"))
BATCH = 100
CONFIGS: dict[str, dict[str, Any]] = {
    "digits": {
        "shape": (1, 8, 8), "params": {"latent_dim": 100, "arch": "mlp", "hidden": (256, 256)}, "iters": 20, "block": 5,
    },
    "ref32": {"shape": (3, 32, 32), "params": {"latent_dim": 100, "arch": "ref32", "ngf": 64}, "iters": 3, "block": 3},
}


def official_root() -> tuple[Path | None, str]:
    """``(folder holding train_svhn.py, "")`` or ``(None, why not)``."""
    raw = os.environ.get(ENV)
    if not raw:
        return None, f"{ENV} is not set (path of a checkout of bpucla/latent-space-EBM-prior)"
    root = Path(raw).expanduser()
    if not (root / "train_svhn.py").is_file():
        return None, f"{ENV}={raw!r} has no train_svhn.py"
    return root, ""


def load_official(root: Path) -> types.ModuleType:
    """``train_svhn.py`` imported as a module, the file unchanged (see the module docstring)."""
    if importlib.util.find_spec("tensorflow") is None and "fid_v2_tf_cpu" not in sys.modules:
        stub = types.ModuleType("fid_v2_tf_cpu")

        def fid_score(*args: Any, **kwargs: Any) -> float:
            raise RuntimeError("FID needs TensorFlow; the benchmark never computes it")

        stub.fid_score = fid_score  # type: ignore[attr-defined]
        sys.modules["fid_v2_tf_cpu"] = stub
    sys.path.insert(0, str(root))  # for pygrid
    try:
        spec = importlib.util.spec_from_file_location("official_lebm_train_svhn", root / "train_svhn.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(root))
    return module


class _DigitsNetG(nn.Module):
    """The digits-sized MLP generator in the official ``_netG`` slot: ``[B, nz, 1, 1] -> [B, 1, 8, 8]``."""

    def __init__(self, args: Any) -> None:
        super().__init__()
        info = DatasetInfo(name="bench", shape=CONFIGS["digits"]["shape"], kind="image", n_classes=1)
        self.net = build_generator(info, args.nz, "mlp", CONFIGS["digits"]["params"]["hidden"])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], -1))


class _InterleavingLoader:
    """Stands in for ``DataLoader`` inside the official ``train()``: fixed batches, and after every
    ``block`` official iterations a block of ``block`` consecutive calls of each of ``steps``
    (benchbed's), the steps taking turns going first.  The first iteration of every block, on either
    side, is a lead-in and is not timed."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        steps: dict[str, Callable[[], Any]],
        log: dict[str, list[list[float]]],
        block: int,
    ) -> None:
        x, y = dataset.tensors
        self.batches = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        self.steps, self.log, self.block = steps, log, max(2, block)
        self.blocks_run = 0

    def __len__(self) -> int:
        return len(self.batches)

    def _benchbed_blocks(self, times: dict[str, list[float]]) -> None:
        names = list(self.steps)
        k = self.blocks_run % len(names)
        for name in names[k:] + names[:k]:
            time.sleep(SETTLE_S)
            for j in range(self.block):
                t = time.perf_counter()
                self.steps[name]()
                if j > 0:
                    times[name].append(time.perf_counter() - t)
        self.blocks_run += 1
        time.sleep(SETTLE_S)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        times: dict[str, list[float]] = {name: [] for name in ("official", *self.steps)}
        handed_out = 0.0
        for i, batch in enumerate(self.batches):
            if i >= 1:
                if (i - 1) % self.block:  # official iteration i - 1 ran since the hand-out, not a lead-in
                    times["official"].append(time.perf_counter() - handed_out)
                if i % self.block == 0:
                    self._benchbed_blocks(times)
            handed_out = time.perf_counter()
            yield batch
        if len(self.batches) >= 2:  # the loop asked past the last batch: its last iteration ended
            if (len(self.batches) - 1) % self.block:
                times["official"].append(time.perf_counter() - handed_out)
            self._benchbed_blocks(times)
            for name, values in times.items():
                self.log.setdefault(name, []).append(values)


def benchbed_step(config: str, model: Any = None) -> Callable[[], Any]:
    """``lebm.train_step`` on a fixed batch of random images at ``config`` (``model``: an LEBM instance
    not yet set up, e.g. another version's, instead of the registered one)."""
    cfg = CONFIGS[config]
    x = torch.rand((BATCH * 5, *cfg["shape"]), generator=torch.Generator().manual_seed(0))
    split = Split(x, torch.zeros(len(x), dtype=torch.long))
    info = DatasetInfo(name="bench", shape=cfg["shape"], kind="image", n_classes=1)
    bundle = DataBundle(info=info, train=split, val=split, test=split)
    model = build_model("lebm", cfg["params"]) if model is None else model
    setup_model(
        model, bundle, Budget(10, BATCH), seed=0, device=torch.device("cpu"), sampler=bound_sampler("lebm", "langevin")
    )
    batch = Batch(x[:BATCH], None, torch.arange(BATCH))
    return lambda: model.train_step(batch, 0)


def run_side_by_side(
    config: str, rounds: int = ROUNDS, iters: int | None = None, steps: dict[str, Callable[[], Any]] | None = None
) -> dict[str, Any]:
    """Per-round medians (s/iteration) of the official ``train()`` and of benchbed's ``train_step``
    (``steps``: named steps to interleave instead, default ``{"benchbed": benchbed_step(config)}``)."""
    root, why = official_root()
    if root is None:
        raise RuntimeError(why)
    iters = iters or int(os.environ.get("BENCH_ITERS", CONFIGS[config]["iters"]))
    block = int(os.environ.get("BENCH_BLOCK", CONFIGS[config]["block"]))
    torch.set_num_threads(THREADS)
    official = load_official(root)
    steps = steps or {"benchbed": benchbed_step(config)}
    shape = CONFIGS[config]["shape"]
    n = BATCH * iters
    x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(1)) * 2 - 1
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(n, dtype=torch.long))
    log: dict[str, list[list[float]]] = {}

    def loader(ds: Any, batch_size: int, **_: Any) -> _InterleavingLoader:
        return _InterleavingLoader(ds, batch_size, steps, log, block)

    quiet = 10**9  # epoch-end plots, stats, checkpoints and FID: epoch 0 only / never
    args_job = {
        "job_id": 0, "device": 0, "n_epochs": rounds + 1, "batch_size": BATCH, "nz": 100, "nc": shape[0],
        "img_size": shape[-1], "n_fid_samples": n, "n_plot": quiet, "n_stats": quiet, "n_ckpt": quiet,
        "n_metrics": quiet,
    }  # fmt: skip
    setup_logging = official.setup_logging
    replaced: dict[str, Any] = {
        "get_dataset": lambda args: (dataset, dataset),
        "set_gpu": lambda gpu: None,
        "setup_logging": lambda name, out, console=True: setup_logging(name, out, console=False),
    }
    if config == "digits":
        replaced["_netG"] = _DigitsNetG
    for k, v in replaced.items():
        setattr(official, k, v)
    real_loader, argv = torch.utils.data.DataLoader, sys.argv
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        torch.utils.data.DataLoader = loader  # type: ignore[assignment,misc]
        sys.argv = [str(root / "train_svhn.py")]  # its parse_args() reads the command line
        try:
            official.train(args_job, out, out, {})
        finally:
            torch.utils.data.DataLoader = real_loader  # type: ignore[misc]
            sys.argv = argv
    # Per round (epoch 0, the warm-up, left out) the median over its iterations.
    rounds_median = {name: [statistics.median(r) for r in per_epoch[1:]] for name, per_epoch in log.items()}
    off = rounds_median["official"]
    ours = [name for name in rounds_median if name != "official"]
    return {
        "config": config,
        "threads": THREADS,
        "iters_per_round": len(log["official"][-1]),
        "block": block,
        "rounds": rounds_median,
        "medians": {name: statistics.median(v) for name, v in rounds_median.items()},
        "ratios": {name: statistics.median(rounds_median[name]) / statistics.median(off) for name in ours},
        "round_ratios": {name: [o / f for o, f in zip(rounds_median[name], off, strict=True)] for name in ours},
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def report(r: dict[str, Any]) -> str:
    names = list(r["rounds"])
    n_rounds = len(r["rounds"]["official"])
    rows = [
        f"[{r['config']}] {r['threads']} threads, {n_rounds} rounds, {r['iters_per_round']} timed iterations per "
        f"round and side in blocks of {r['block']} (s/it, medians)"
    ]
    for i in range(n_rounds):
        cells = [f"{name} {r['rounds'][name][i]:.4f}" for name in names]
        ratios = [f"{name}/official {r['round_ratios'][name][i]:.3f}" for name in names[1:]]
        rows.append(f"  round {i + 1}: " + ", ".join(cells + ratios))
    cells = [f"{name} {r['medians'][name]:.4f}" for name in names]
    ratios = [
        f"{name}/official {r['ratios'][name]:.3f} (median of round ratios "
        f"{statistics.median(r['round_ratios'][name]):.3f})"
        for name in names[1:]
    ]
    rows.append("  median: " + ", ".join(cells + ratios) + f"; load {r['load_before']:.2f} -> {r['load_after']:.2f}")
    return "\n".join(rows)


def _configs() -> list[str]:
    return ["digits", "ref32"] if os.environ.get("BENCH_LEBM_REF32") == "1" else ["digits"]


@pytest.mark.parametrize("config", _configs())
def test_lebm_against_official(benchmark: Any, config: str) -> None:
    """Seconds per iteration, official ``train()`` against benchbed ``lebm.train_step``, interleaved."""
    root, why = official_root()
    if root is None:
        pytest.skip(why)
    result: dict[str, Any] = {}
    benchmark.pedantic(lambda: result.update(run_side_by_side(config)), rounds=1, iterations=1)
    benchmark.extra_info.update({k: v for k, v in result.items() if k != "config"})
    print("\n" + report(result))


if __name__ == "__main__":
    if official_root()[0] is None:
        print(f"skipped: {official_root()[1]}")
        sys.exit(0)
    for name in sys.argv[1:] or _configs():
        print(report(run_side_by_side(name)), flush=True)
