"""The training loop shared by the runner and by ``benchbed.testing.fit`` (one ``fit`` call for a
one-shot model).

The loop owns seeding, the minibatch order, divergence detection and checkpoint hooks; the model
owns its optimisers and what one step does.  The minibatch order is a function of (seed, step), so
a cell resumed from a checkpoint sees the same batches it would have seen without interruption.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchbed.contracts import Batch, Budget, DataBundle, EngineOptions, Model, SamplerProvider, SetupContext, Split
from benchbed.errors import Diverged

#: A loss whose magnitude passes this is treated as exploding (an energy running away).
EXPLODED = 1e12

#: How many points of each loss curve are kept in the store (evenly spaced over the budget).
CURVE_POINTS = 200


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a cell is reproducible on one machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def nested_training(device: torch.device) -> Iterator[None]:
    """Allow training inside metric evaluation (outlier variants) without side effects on it.

    Metrics run under ``no_grad``; training needs grad back.  Training reseeds and draws from the
    global RNGs; they are restored afterwards, so a metric's values do not depend on whether it or
    an earlier metric trained a (cached) variant.
    """
    state = (np.random.get_state(), random.getstate())
    cuda = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        np.random.set_state(state[0])
        random.setstate(state[1])


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_problem(name: str) -> str:
    """Why device ``name`` (a valid name: auto, cpu, mps, cuda, cuda:N) cannot be used on this machine,
    or '': checked before anything trains, so that a suite naming a GPU fails on a machine without one
    with a clear error, not inside the first cell."""
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
            return f"CUDA is not available on this machine (torch {torch.__version__}, {build}); use auto or cpu"
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA device(s), so {name} does not exist"
    if name == "mps" and not torch.backends.mps.is_available():
        return "MPS (Apple GPU) is not available on this machine; use auto or cpu"
    return ""


def batches(split: Split, batch_size: int, seed: int, start_step: int, device: torch.device) -> Iterator[Batch]:
    """Minibatches without replacement, reshuffled each epoch by a generator seeded from (seed, epoch).

    Yields from ``start_step`` on, identically to a run that started at step 0.  A batch never
    straddles two epochs; ``batch_size`` larger than the split gives the whole split each step.
    """
    n = len(split)
    bs = min(batch_size, n)
    per_epoch = max(1, n // bs)
    x_all, y_all = split.x.to(device), None if split.y is None else split.y.to(device)
    step = start_step
    while True:
        epoch, pos = divmod(step, per_epoch)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        for p in range(pos, per_epoch):
            idx = perm[p * bs : (p + 1) * bs]
            dev_idx = idx.to(device)
            yield Batch(x_all[dev_idx], None if y_all is None else y_all[dev_idx], idx)
        step = (epoch + 1) * per_epoch


@dataclass
class History:
    """Loss curves, subsampled to at most about :data:`CURVE_POINTS` points, plus the last losses."""

    total_steps: int
    points: list[dict[str, float]] = field(default_factory=list)
    last: dict[str, float] = field(default_factory=dict)

    def record(self, step: int, losses: Mapping[str, float]) -> None:
        self.last = {k: float(v) for k, v in losses.items()}
        every = max(1, self.total_steps // CURVE_POINTS)
        if step % every == 0 or step == self.total_steps - 1:
            # Six significant digits are plenty for a plotted curve and halve the published runs.jsonl.
            self.points.append({"step": float(step), **{k: float(f"{v:.6g}") for k, v in self.last.items()}})


def check_finite(losses: Mapping[str, float], step: int) -> None:
    """Raise :class:`Diverged` naming the loss and the step on NaN, inf or an exploding value."""
    for key, value in losses.items():
        v = float(value)
        if not math.isfinite(v) or abs(v) > EXPLODED:
            raise Diverged(f"loss {key!r} became {v:.4g} at step {step}")


def likely_cause(history: History, step: int, sampler: bool = True) -> str:
    """What a divergence at ``step`` most likely comes from, read from the losses recorded before it.

    Before any weight update (step 0) only the initial model and its sampler have run: the sampler's
    step size is the suspect.  Losses that grew by orders of magnitude before the failure, or a failure
    within a few steps of the first update, point at the learning rate.  Steady losses until a sudden
    failure point at a sampler's step size (or an energy that became unstable).  A model without a
    sampler (``sampler=False``) is never told to look at one.
    """
    if step == 0:
        if not sampler:
            return "likely cause: the initial model or its loss (it failed before any weight update)"
        return "likely cause: a sampler's step size (it failed before any weight update)"
    first = history.points[0] if history.points else {}
    for key, value in history.last.items():
        start = abs(float(first.get(key, value)))
        if abs(value) > 100 * max(start, 1e-3):
            return (f"likely cause: the learning rate (loss {key!r} grew from {start:.3g} to {abs(value):.3g} "
                    "before it failed)")
    if step < 5:
        return f"likely cause: the learning rate (it failed {step} step(s) after the first weight update)"
    if not sampler:
        return "likely cause: an unstable model or loss (the losses were steady until then)"
    return "likely cause: a sampler's step size or an unstable energy (the losses were steady until then)"


def setup_model(
    model: Model,
    bundle: DataBundle,
    budget: Budget,
    *,
    seed: int,
    device: torch.device,
    sampler: SamplerProvider | None = None,
    engine: EngineOptions | None = None,
) -> Any:
    """Seed, then let the model build its networks for ``bundle`` on ``device``."""
    seed_everything(seed)
    ctx = SetupContext(
        info=bundle.info, train=bundle.train, budget=budget, device=device, seed=seed,
        sampler=sampler, engine=engine or EngineOptions(),
    )
    model.setup(ctx)
    if hasattr(model, "to"):
        model.to(device)
    return model


StepCallback = Callable[[int, Mapping[str, float]], None]


def is_one_shot(model: object) -> bool:
    """Whether ``model`` is fitted by one ``fit(train)`` call: it has ``fit`` and no ``train_step``
    (the default of :func:`train`; the runner passes ``ModelSpec.one_shot`` instead)."""
    return callable(getattr(model, "fit", None)) and not callable(getattr(model, "train_step", None))


def train(
    model: Model,
    bundle: DataBundle,
    budget: Budget,
    *,
    seed: int,
    device: torch.device,
    start_step: int = 0,
    history: History | None = None,
    on_step: StepCallback | None = None,
    one_shot: bool | None = None,
    sampler: bool = True,
) -> History:
    """Run ``model.train_step`` from ``start_step`` to ``budget.steps``.

    ``on_step(step, losses)`` runs after each step (progress bars, checkpoints).  ``sampler``: whether
    the model runs a sampler (only the divergence message's likely cause reads it).

    A one-shot model (``one_shot``; ``None``: :func:`is_one_shot`) is fitted instead by one call
    ``model.fit(bundle.train)``, counted as step 0 of one: the budget does not apply, ``start_step`` 1
    means it was fitted already, and the history holds one point with the losses ``fit`` returns (a
    mapping of names to numbers; anything else records none).

    Raises:
        Diverged: a loss became non-finite or exploded; the message names it and the step.
    """
    if one_shot is None:
        one_shot = is_one_shot(model)
    total = 1 if one_shot else budget.steps
    history = history or History(total)
    if hasattr(model, "train"):
        model.train()
    if one_shot:
        if start_step < 1:
            fit: Callable[[Split], object] = getattr(model, "fit")  # noqa: B009 - the one-shot contract, not Model's
            result = fit(bundle.train)
            losses: Mapping[str, float] = (
                {k: float(v) for k, v in result.items()} if isinstance(result, Mapping) else {})
            check_finite(losses, 0)
            if losses:
                history.record(0, losses)
            if on_step is not None:
                on_step(0, losses)
    else:
        stream = batches(bundle.train, budget.batch_size, seed, start_step, device)
        for step in range(start_step, budget.steps):
            try:
                losses = model.train_step(next(stream), step)
                check_finite(losses, step)
            except Diverged as exc:
                raise Diverged(f"{exc}; {likely_cause(history, step, sampler)}") from None
            history.record(step, losses)
            if on_step is not None:
                on_step(step, losses)
    if hasattr(model, "eval"):
        model.eval()
    return history
