"""Running a suite sampler on a model's latent log-density, and running two chain sets at once.

Samplers differentiate ``log_density`` with respect to ``z`` only.  Freezing the networks while the
chains run (:func:`frozen`, :func:`run_chains`) means autograd neither computes nor stores anything
for the weights (no retained graphs, no ``.grad`` accumulation), whatever the sampler does inside.

Reproducible concurrency: a model that may run two independent chain sets side by side
(:func:`run_concurrently`) gives each its own ``torch.Generator`` seeded from the global RNG,
*whether or not* they actually run concurrently, so that the engine option deciding it
(``EngineOptions.concurrent_chains``) never changes the numbers.  :func:`accepts_generator` tells
whether a sampler can take such a generator; one that cannot uses the global RNG, sequentially.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn

from benchbed.contracts import LogDensity, Sampler, SampleResult
from benchbed.errors import PluginError

__all__ = ["accepts_generator", "frozen", "run_chains", "run_concurrently"]


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Set ``requires_grad=False`` on every trainable parameter of ``modules``; restore on exit.

    Only the parameters that were trainable on entry are switched back (also when the body raises).
    """
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def run_chains(
    sampler: Sampler,
    log_density: LogDensity,
    z0: torch.Tensor,
    *modules: nn.Module,
    rounds: int = 1,
    generator: torch.Generator | None = None,
) -> SampleResult:
    """``rounds`` consecutive runs of ``sampler`` from ``z0`` [B, Z] with ``modules`` frozen.

    Works under ``torch.no_grad()``: gradients are enabled for the chains here.  ``generator``, when
    given, is passed on as ``sampler.sample(..., generator=generator)`` (check
    :func:`accepts_generator` first); ``None`` leaves the sampler on the global RNG.

    Returns:
        The last run's result (``z`` detached, [B, Z]) with ``diagnostics["steps"]`` summed over
        the rounds.

    Raises:
        ValueError: ``rounds < 1``.
    """
    kwargs = {"generator": generator} if generator is not None else {}
    if rounds < 1:
        raise ValueError(f"run_chains: rounds must be >= 1, got {rounds}")
    z = z0.detach()
    steps = 0.0
    with frozen(*modules), torch.enable_grad():
        for _ in range(rounds):
            result = sampler.sample(log_density, z, **kwargs)
            if not isinstance(result, SampleResult):  # name the plugin's class, not this line
                cls = type(sampler)
                raise PluginError(f"sampler {cls.__qualname__} ({cls.__module__}): sample() returned a "
                                  f"{type(result).__name__}, not a benchbed.contracts.SampleResult(z, diagnostics)")
            z = result.z.detach()
            steps += float(result.diagnostics.get("steps", 0.0))
    return SampleResult(z, {**result.diagnostics, "steps": steps})


def accepts_generator(sampler: Sampler) -> bool:
    """Whether ``sampler.sample`` takes a ``generator`` keyword (reproducible noise per chain set)."""
    try:
        return "generator" in inspect.signature(sampler.sample).parameters
    except (TypeError, ValueError):
        return False


T = TypeVar("T")
U = TypeVar("U")
_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """One worker thread per process (re-created after a fork, whose child has no threads)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="benchbed-chains"))
    return _POOL[1]


def run_concurrently(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """Run ``first`` here and ``second`` in a worker thread at the same time, one intra-op thread each.

    Two independent short-run chain sets (e.g. an EBM prior's prior and posterior chains) are
    sequences of small matmuls that cannot use two cores each; running them side by side uses the
    intra-op thread budget as inter-chain parallelism instead.  torch releases the GIL inside its
    kernels.  Callers must make each callable deterministic on its own (explicit
    ``torch.Generator`` objects), because the interleaving of the two threads is not.  The grad mode
    of the caller holds in both threads.  The intra-op thread count is restored on exit, also when a
    callable raises (its exception is re-raised once both have finished).

    Returns:
        ``(first(), second())``.
    """
    n_threads = torch.get_num_threads()
    grad_mode = torch.is_grad_enabled()

    def worker() -> U:
        torch.set_num_threads(1)
        with torch.set_grad_enabled(grad_mode):
            return second()

    torch.set_num_threads(1)
    try:
        future = _pool().submit(worker)
        try:
            result_first = first()
        except BaseException:
            wait([future])
            raise
        return result_first, future.result()
    finally:
        torch.set_num_threads(n_threads)
