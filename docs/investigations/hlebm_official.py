"""hlebm against its authors' code: same networks, same batch, same noise -> same chains and same
learning steps?  The check behind ``docs/audits.md#hlebm`` (issue 15, item 5; run by hand: not a
test, not a benchmark).

The official joint-training code of Cui, Wu and Han (``joint-training/train_cifar10.py`` of
https://github.com/jcui1224/hierarchical-joint-ebm) is not vendored: bring it into a scratch folder
and give its path::

    git clone https://github.com/jcui1224/hierarchical-joint-ebm /tmp/official_hlebm
    BENCHBED_OFFICIAL_HLEBM=/tmp/official_hlebm PYTHONPATH=.:plugins \\
        python docs/investigations/hlebm_official.py --dataset digits --steps 20

**What runs.**  benchbed's ``hlebm`` (MLE scheme, the standard suite's entry: MLP networks, 10x the
official learning rates) is set up on the data set.  The official file is imported as a module,
unchanged, and its own ``train_step`` (posterior and prior Langevin chains with autograd, then its
four Adam steps) runs on copies of benchbed's networks behind the official interfaces:

* ``netG[0]``: the generator, ``z_1 [B, d_1] -> x [B, C, H, W]``; its ``loss`` is the official
  ``_Cifar10_netG.loss`` (squared error summed over pixels, averaged over the batch);
* ``netG[1]``: the conditional p(z_1 | z_2), returning the official ``Normal`` with benchbed's
  (mu, sigma); its ``loss`` is the official ``_netGzi_mlp.loss``;
* ``netE[l]``: f_l, ``[B, d_l] -> [B]`` as ``_netEzi``.

The official loop then draws its noise (``torch.randn`` in ``sample_p_0``, ``torch.randn_like`` in
the chains) from the tensors benchbed's ``train_step`` drew for the same step (recorded from
``torch.randn``), split by layer.  Each step feeds both the same batch, on the model scale.

The official top layer is N(0, 1.01^2) (``Normal(0, log sigma = 0)`` adds 0.01 to sigma; benchbed's is
N(0, I), a documented deviation).  ``--top-std official`` keeps it; the default ``one`` replaces the
official ``Normal`` class by one without the 0.01 for that layer, so that the two run the same
algorithm and any difference is rounding.

``--held-out K`` trains both on the outlier protocol's variant of the data set (train and val
without digit K) and ends with one shared evaluator: the ``outlier_auprc`` metric's figures (AUPRC,
and AUROC) of digit K on the test split, from benchbed's ``anomaly_score`` (-log p(x, z) at the
inferred z) with benchbed's trained weights and again with the official step's weights loaded into the
same model, both scorings from the same RNG state.

Prints, per step, the largest absolute difference of the chains' end points and of every parameter
after the step, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import sys
import time
import types
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from benchbed.contracts import Batch, Budget
from benchbed.testing import bound_sampler, build_model, load_dataset
from benchbed.training import setup_model

#: The standard suite's hlebm entry (leaderboards/standard/suite.toml).
SUITE_PARAMS: dict[str, Any] = {"arch": "mlp", "g_lr": 1e-3, "cond_lr": 1e-3, "e_lr": 2e-4}
BATCH = 100


def load_official(root: Path) -> types.ModuleType:
    """``joint-training/train_cifar10.py`` imported as a module (its folder first on ``sys.path`` for
    its own ``nets`` and ``utils``)."""
    folder = root / "joint-training"
    path = folder / "train_cifar10.py"
    if not path.is_file():
        raise SystemExit(f"hlebm_official: no {path}; BENCHBED_OFFICIAL_HLEBM must name a clone of "
                         "https://github.com/jcui1224/hierarchical-joint-ebm")
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("official_hlebm_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ScriptedTorch:
    """Stands in for the official module's ``torch`` (imported there as ``t``): every attribute is
    torch's, except ``randn`` and ``randn_like``, which hand out the given tensors in order (each a
    fresh copy, its shape checked)."""

    def __init__(self) -> None:
        self.queue: deque[torch.Tensor] = deque()

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def _next(self, shape: tuple[int, ...]) -> torch.Tensor:
        if not self.queue:
            raise RuntimeError("hlebm_official: the official loop drew more noise than benchbed's step")
        eps = self.queue.popleft()
        if tuple(eps.shape) != tuple(shape):
            raise RuntimeError(f"hlebm_official: the official loop asked for noise of shape {tuple(shape)}, "
                               f"the next recorded draw has {tuple(eps.shape)}")
        return eps.clone()

    def randn(self, *size: Any, **_: Any) -> torch.Tensor:
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], tuple | list | torch.Size) else size
        return self._next(tuple(int(s) for s in shape))

    def randn_like(self, z: torch.Tensor, **_: Any) -> torch.Tensor:
        return self._next(tuple(z.shape))


@contextmanager
def recording_randn(draws: list[torch.Tensor]) -> Iterator[None]:
    """Record every tensor ``torch.randn`` returns inside the block (benchbed's chains draw through it)."""
    original = torch.randn

    def randn(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = original(*args, **kwargs)
        draws.append(out.detach().clone())
        return out

    torch.randn = randn  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.randn = original  # type: ignore[assignment]


class OfficialGenerator(nn.Module):
    """benchbed's generator behind ``_Cifar10_netG``'s interface: ``z_1 [B, d_1] -> [B, C, H, W]``."""

    def __init__(self, gen: nn.Module, official_loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.gen, self._loss = gen, official_loss

    def forward(self, z1: torch.Tensor) -> torch.Tensor:
        return self.gen(z1)

    def loss(self, x: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        return self._loss(self, x, z1)


class OfficialConditional(nn.Module):
    """benchbed's p(z_1 | z_2) behind ``_netGzi_mlp``'s interface: ``z_2 -> (Normal, None)``."""

    def __init__(self, cond: nn.Module, normal: type, official_loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.cond, self._loss = cond, official_loss

        class GivenNormal(normal):  # type: ignore[misc, valid-type]
            """The official ``Normal`` (its ``log_prob``) with benchbed's sigma as it is."""

            def __init__(self, mu: torch.Tensor, sigma: torch.Tensor) -> None:
                self.mu, self.sigma = mu, sigma

        self._normal = GivenNormal

    def forward(self, z2: torch.Tensor) -> tuple[Any, None]:
        mu, sigma = self.cond(z2)
        return self._normal(mu, sigma), None

    def loss(self, z_q: list[torch.Tensor], z_p: list[torch.Tensor]) -> torch.Tensor:
        return self._loss(self, z_q, z_p)


class OfficialEnergy(nn.Module):
    """benchbed's f_l behind ``_netEzi``'s interface: ``[B, d_l] -> [B]``."""

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.f(z).squeeze(1)


class _Log:
    def info(self, *_: Any, **__: Any) -> None:
        pass


def unit_top_normal(normal: type) -> type:
    """The official ``Normal`` without the 0.01 added to sigma (used only for the top layer's N(0, I))."""

    class UnitNormal(normal):  # type: ignore[misc, valid-type]
        def __init__(self, mu: torch.Tensor, log_sigma: torch.Tensor, device: Any = None) -> None:
            self.device, self.mu, self.sigma = device, mu, torch.exp(log_sigma)

    return UnitNormal


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max())


def shared_evaluation(model: Any, trained_elsewhere: list[tuple[nn.Module, nn.Module]], bundle: Any,
                      held_out: int, seed: int) -> dict[str, Any]:
    """The outlier metric's figures for digit ``held_out`` of ``bundle``'s test split, scored by one
    evaluator (benchbed's ``anomaly_score``, -log p(x, z) at the model's own inferred z, in batches of
    500 as the ``outlier_auprc`` metric scores) for ``model`` as trained and again with the weights of
    ``trained_elsewhere`` (``(benchbed module, official-side copy)`` pairs) loaded into it.  Both
    scorings start from the same RNG state, so their chains draw the same noise."""
    x, y = bundle.test.x, bundle.test.y
    positive = (y == held_out).numpy()
    out: dict[str, Any] = {"held_out": held_out, "test_examples": len(y), "base_rate": float(positive.mean())}
    for side in ("benchbed", "official"):
        if side == "official":
            for mine, theirs in trained_elsewhere:
                mine.load_state_dict(theirs.state_dict())
        torch.manual_seed(seed + 7)
        scores = torch.cat([model.anomaly_score(chunk).detach() for chunk in x.split(500)]).double().numpy()
        out[side] = {"auprc": float(average_precision_score(positive, scores)),
                     "auroc": float(roc_auc_score(positive, scores))}
        print(f"{side} weights: AUPRC {out[side]['auprc']:.4f}, AUROC {out[side]['auroc']:.4f} "
              f"(digit {held_out}, base rate {out['base_rate']:.3f})", flush=True)
    return out


def run(dataset: str, steps: int, seed: int, top_std: str, official_root: Path,
        held_out: int | None = None) -> dict[str, Any]:
    official = load_official(official_root)
    nets = sys.modules["nets"]
    torch.manual_seed(seed)
    full = load_dataset(dataset, seed=seed)
    # The outlier protocol's training: train and val without the held-out digit, test unchanged.
    bundle = full if held_out is None else full.hold_out((held_out,))
    model = build_model("hlebm", SUITE_PARAMS)
    setup_model(model, bundle, Budget(2000, BATCH), seed=seed, device=torch.device("cpu"),
                sampler=bound_sampler("hlebm", "langevin"))
    if model.scheme != "mle" or model.mcmc_space != "z" or len(model.latent_dims) != 2:
        raise SystemExit("hlebm_official: the official loop is the two-layer MLE scheme with z-space chains")
    d1, d2 = model.latent_dims
    k0, s0 = model.prior_sampler.n_steps, model.prior_sampler.step_size
    k1, s1 = model.post_sampler.n_steps, model.post_sampler.step_size

    net_g = [OfficialGenerator(copy.deepcopy(model.gen), nets._Cifar10_netG.loss),
             OfficialConditional(copy.deepcopy(model.prior.conds[0]), official.Normal, nets._netGzi_mlp.loss)]
    net_e = [OfficialEnergy(copy.deepcopy(f)) for f in model.prior.energies]
    opt_g = [torch.optim.Adam(net_g[0].parameters(), lr=model.g_lr),
             torch.optim.Adam(net_g[1].parameters(), lr=model.cond_lr)]
    opt_e = [torch.optim.Adam(e.parameters(), lr=model.e_lr) for e in net_e]
    args = {"g_l_steps": k1, "g_l_step_size": s1, "e_l_steps": k0, "e_l_step_size": s0, "use_noise": True,
            "sigma": model.llhd_sigma, "device": "cpu", "z1_dim": d1, "z2_dim": d2}

    scripted = ScriptedTorch()
    official.t = scripted
    if top_std == "one":
        official.Normal = unit_top_normal(official.Normal)
    captured: dict[str, list[torch.Tensor]] = {}

    def capture(name: str, fn: Callable[..., list[torch.Tensor]]) -> Callable[..., list[torch.Tensor]]:
        def wrapped(*a: Any, **k: Any) -> list[torch.Tensor]:
            out = fn(*a, **k)
            captured[name] = out
            return out
        return wrapped

    official.langevin_posterior_sampling = capture("official_post", official.langevin_posterior_sampling)
    official.langevin_prior_sampling = capture("official_prior", official.langevin_prior_sampling)
    model._prior_mcmc = capture("benchbed_prior", model._prior_mcmc)
    model._posterior_mcmc = capture("benchbed_post", model._posterior_mcmc)

    pairs = [(model.gen, net_g[0].gen), (model.prior.conds[0], net_g[1].cond),
             *zip(model.prior.energies, (e.f for e in net_e), strict=True)]
    rows = []
    start = time.perf_counter()
    for step in range(steps):
        lo = (step * BATCH) % (bundle.train.x.shape[0] - BATCH)
        x = bundle.train.x[lo:lo + BATCH]
        draws: list[torch.Tensor] = []
        with recording_randn(draws):
            stats = model.train_step(Batch(x, None, torch.arange(BATCH)), step)
        if len(draws) != 2 + k0 + k1 or any(tuple(d.shape) != (BATCH, d1 + d2) for d in draws):
            shapes = sorted({tuple(d.shape) for d in draws})
            raise SystemExit(f"hlebm_official: benchbed's step drew {len(draws)} tensors ({shapes}); "
                             f"expected {2 + k0 + k1} of {(BATCH, d1 + d2)}")
        prior_draws, post_draws = draws[:1 + k0], draws[1 + k0:]
        # The official step runs the posterior chains first, then the prior's; each draw splits by layer.
        for d in (*post_draws, *prior_draws):
            scripted.queue.extend(d.split([d1, d2], dim=1))
        x_m = model.scale.to_model(x)
        official.train_step(net_g, net_e, opt_g, opt_e, [x_m], _Log(), args, ep=0)
        params = [(p, q) for a, b in pairs for p, q in zip(a.parameters(), b.parameters(), strict=True)]
        if scripted.queue:
            raise SystemExit(f"hlebm_official: the official step left {len(scripted.queue)} draws unused")
        torch.set_grad_enabled(False)  # measuring only
        row = {
            "step": step,
            "prior_chain": max_diff(captured["benchbed_prior"], torch.cat(captured["official_prior"], dim=1)),
            "posterior_chain": max_diff(captured["benchbed_post"], torch.cat(captured["official_post"], dim=1)),
            "params": max(max_diff(p, q) for p, q in params),
            # Adam's first steps move a weight by about lr * g / (|g| + 1e-8): a gradient at rounding
            # level (|g| ~ 1e-8) gets a step of up to lr whose size is the rounding's.  The weights whose
            # gradient is above that level on both sides:
            "params_clear_grad": max(float(((p - q).abs() * ((p.grad.abs() > 1e-6) & (q.grad.abs() > 1e-6))).max())
                                     for p, q in params if p.grad is not None and q.grad is not None),
            "mse_benchbed": stats["mse_model_scale"],
            "mse_official": float(((x_m - net_g[0](captured["official_post"][0])) ** 2).mean().detach()),
        }
        torch.set_grad_enabled(True)
        rows.append(row)
        print(f"step {step:3d}: chains differ by {row['prior_chain']:.1e} (prior), {row['posterior_chain']:.1e} "
              f"(posterior); parameters by {row['params']:.1e} ({row['params_clear_grad']:.1e} where |g| > 1e-6); "
              f"training mse {row['mse_benchbed']:.4f} (benchbed), {row['mse_official']:.4f} (official)", flush=True)
    result = {"dataset": dataset, "seed": seed, "steps": steps, "top_std": top_std, "k0": k0, "s0": s0,
              "k1": k1, "s1": s1, "dims": [d1, d2], "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    if held_out is not None:
        result["evaluation"] = shared_evaluation(model, pairs, bundle, held_out, seed)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-std", choices=("one", "official"), default="one")
    parser.add_argument("--held-out", type=int, default=None,
                        help="train without this digit and end with the outlier metric's AUPRC/AUROC of it, "
                             "scored alike for benchbed's weights and the official step's")
    opts = parser.parse_args()
    root = os.environ.get("BENCHBED_OFFICIAL_HLEBM")
    if not root:
        raise SystemExit("hlebm_official: set BENCHBED_OFFICIAL_HLEBM to a clone of "
                         "https://github.com/jcui1224/hierarchical-joint-ebm")
    torch.set_num_threads(1)
    print(json.dumps(run(opts.dataset, opts.steps, opts.seed, opts.top_std, Path(root), opts.held_out)))


if __name__ == "__main__":
    main()
