"""Gradient-based Markov transitions on a latent log-density, as plain functions.

Every function takes ``z`` [B, *Z] (B independent chains) and ``log_density: z -> [B]``.  Nothing
here keeps state: samplers, models and metrics compose these pieces into their own loops.

**Unadjusted Langevin** (:func:`langevin_update`, :func:`langevin_chain`)::

    z_{k+1} = z_k + (s^2 / 2) * grad_z log p(z_k) + s * eps_k,     eps_k ~ N(0, I)

``noise=False`` drops the ``s * eps_k`` term: gradient ascent with learning rate ``s^2 / 2``.  No
Metropolis correction: the chains are short-run and their bias is part of the method.

**Hamiltonian Monte Carlo** (:func:`hmc_step`, :func:`hmc_transition`; Neal 2011, "MCMC using
Hamiltonian dynamics", eqs. 5.18-5.21).  With ``H(z, p) = -log p(z) + |p|^2 / 2``, one transition
draws ``p_0 ~ N(0, I)`` and runs ``L`` leapfrog steps of size ``eps``::

    p_{1/2}   = p_0 + (eps / 2) grad log p(z_0)
    z_{l+1}   = z_l + eps p_{l+1/2}
    p_{l+3/2} = p_{l+1/2} + eps grad log p(z_{l+1})        (l < L - 1)
    p_L       = p_{L-1/2} + (eps / 2) grad log p(z_L)

then accepts ``z_L`` with probability ``min(1, exp(H(z_0, p_0) - H(z_L, p_L)))``, independently for
each chain.  A proposal whose Hamiltonian is not finite (NaN) is rejected, so a diverging trajectory
never enters the chain.  For any fixed per-chain step size the transition leaves ``p`` invariant.

**Gradient evaluation.**  Callers may run under ``torch.no_grad()`` or ``torch.inference_mode()``;
:func:`dynamics_mode` switches autograd back on locally and :func:`start_chains` copies ``z0`` into
a normal tensor (an inference-mode tensor can never take part in autograd).  Gradients are taken
with ``torch.autograd.grad(..., z)``, so a model's weights get no gradient work and no ``.grad`` is
written.  A log-density offering ``value_and_grad`` (:class:`benchbed.contracts.GradLogDensity`) is
asked directly, with no autograd tape (:func:`gradient_evaluator`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch

from benchbed.contracts import LogDensity
from benchbed.errors import Diverged

__all__ = [
    "Evaluator",
    "check_finite",
    "dynamics_mode",
    "gradient_evaluator",
    "hmc_step",
    "hmc_transition",
    "langevin_chain",
    "langevin_update",
    "log_density_and_grad",
    "log_density_checked",
    "per_chain",
    "per_chain_sq_norm",
    "start_chains",
]

_INFERENCE_HINT = (
    "a tensor captured by the log-density closure was created under torch.inference_mode() and "
    "cannot be saved for backward; create it under torch.no_grad() instead, or pass "
    "x.clone() made inside `with torch.inference_mode(False):`"
)

#: ``(z, want_value) -> (log p [B] or None, grad [B, *Z])``: see :func:`gradient_evaluator`.
Evaluator = Callable[[torch.Tensor, bool], tuple[torch.Tensor | None, torch.Tensor]]


@contextlib.contextmanager
def dynamics_mode() -> Iterator[None]:
    """Leave inference mode and enable autograd for the duration of a chain.

    Nesting ``inference_mode(False)`` inside a caller's ``inference_mode()`` is allowed by torch;
    outside inference mode it is a no-op, so this is safe for every caller.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


def start_chains(z0: torch.Tensor, who: str) -> torch.Tensor:
    """A detached, normal (non-inference) copy of ``z0`` [B, *Z]; call inside :func:`dynamics_mode`.

    The copy also guarantees the caller's tensor (e.g. a model's persistent chain bank) is never
    modified in place.  ``who`` names the caller in error messages.

    Raises:
        ValueError: ``z0`` is not a floating tensor with a batch dimension.
    """
    if not isinstance(z0, torch.Tensor) or z0.dim() < 2 or not z0.is_floating_point():
        shape = tuple(z0.shape) if isinstance(z0, torch.Tensor) else type(z0).__name__
        raise ValueError(f"sampler {who!r}: z0 must be a floating tensor [B, *Z] with B chains, got {shape}")
    return z0.detach().clone()


def log_density_checked(log_density: LogDensity, z: torch.Tensor, who: str) -> torch.Tensor:
    """``log_density(z)`` [B] with its shape checked: it must return one value per chain.

    Raises:
        ValueError: the result is not a tensor of shape ``[B]``.
        RuntimeError: the closure captured an inference-mode tensor (with a hint how to fix it).
    """
    try:
        out = log_density(z)
    except RuntimeError as exc:
        if "Inference tensors" in str(exc):
            raise RuntimeError(f"sampler {who!r}: {_INFERENCE_HINT}") from exc
        raise
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (z.shape[0],):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"sampler {who!r}: log_density(z) must return shape [B] = [{z.shape[0]}] for z of shape "
            f"{tuple(z.shape)}, got {shape}"
        )
    return out


def log_density_and_grad(
    log_density: LogDensity, z: torch.Tensor, who: str, *, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward and one backward pass: ``(log p(z) [B], grad_z log p(z) [B, *Z])``.

    ``z`` must require grad.  ``create_graph`` keeps the graph of the gradient itself (needed only
    when differentiating through the dynamics); otherwise both returned tensors are detached and
    the graph is freed at once.

    Raises:
        ValueError: ``log_density`` does not depend on ``z`` through autograd.
    """
    logp = log_density_checked(log_density, z, who)
    try:
        (grad,) = torch.autograd.grad(logp.sum(), z, create_graph=create_graph)
    except RuntimeError as exc:
        if "Inference tensors" in str(exc):
            raise RuntimeError(f"sampler {who!r}: {_INFERENCE_HINT}") from exc
        if "does not require grad" in str(exc) or "not have been used" in str(exc):
            raise ValueError(
                f"sampler {who!r}: log_density(z) does not depend on z through autograd (did it "
                "detach z, or run under torch.no_grad() inside?)"
            ) from exc
        raise
    if not create_graph:
        logp = logp.detach()
    return logp, grad


def gradient_evaluator(log_density: LogDensity, who: str) -> Evaluator:
    """The cheapest way to get ``grad_z log p(z)`` (and, on request, ``log p(z)``) of ``log_density``.

    A log-density that offers ``value_and_grad`` (:class:`benchbed.contracts.GradLogDensity`) is
    asked directly: no autograd tape, and no value work on the calls that only need the gradient.
    Any other callable gets one autograd pass per call (:func:`log_density_and_grad`).  ``z`` is
    never made to require grad, so the caller may update it in place afterwards.

    Raises:
        ValueError: (when called) the fast path returned a gradient whose shape is not ``z``'s.
    """
    fast = getattr(log_density, "value_and_grad", None)
    if callable(fast):

        def evaluate_fast(z: torch.Tensor, want_value: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
            value, grad = fast(z, value=want_value)
            if grad.shape != z.shape or (want_value and (value is None or tuple(value.shape) != (z.shape[0],))):
                raise ValueError(
                    f"sampler {who!r}: log_density.value_and_grad(z) must return (value [B], grad shaped like "
                    f"z {tuple(z.shape)}), got grad {tuple(grad.shape)}"
                )
            return value, grad

        return evaluate_fast

    def evaluate_autograd(z: torch.Tensor, want_value: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        # A detached alias as the leaf: the graph is freed before the caller touches z again.
        value, grad = log_density_and_grad(log_density, z.detach().requires_grad_(True), who)
        return (value if want_value else None), grad

    return evaluate_autograd


def check_finite(z: torch.Tensor, who: str, step_size: float, n_steps: int) -> None:
    """Raise :class:`benchbed.errors.Diverged` when a chain of ``z`` [B, *Z] left the finite numbers.

    Meant for once per chain run (not per step), so that the chains never wait on a device sync.
    """
    if not bool(torch.isfinite(z).all()):
        raise Diverged(
            f"sampler {who!r}: non-finite latent after {n_steps} steps with step_size={step_size:g}; "
            "the log-density's gradient exploded"
        )


def per_chain_sq_norm(v: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean norm of each chain's entry: [B, *Z] -> [B]."""
    return v.flatten(1).pow(2).sum(1)


def per_chain(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A per-chain vector [B] reshaped to [B, 1, ..., 1] to broadcast against ``z`` [B, *Z]."""
    return v.reshape((-1,) + (1,) * (z.dim() - 1))


# ----------------------------------------------------------------------------------------------
# Langevin


def langevin_update(
    z: torch.Tensor,
    grad: torch.Tensor,
    *,
    step_size: float,
    noise: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One unadjusted Langevin update of ``z`` [B, *Z], **in place**, given ``grad = grad log p(z)``.

    ``z <- z + (s^2 / 2) grad + s eps`` with ``eps ~ N(0, I)`` drawn from ``generator`` (the
    global generator when ``None``); ``noise=False`` leaves out ``s eps``.  Returns ``z``.
    ``z`` must be a normal tensor that does not require grad (e.g. from :func:`start_chains`).
    """
    z.add_(grad, alpha=0.5 * step_size * step_size)
    if noise:
        eps = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z.add_(eps, alpha=step_size)
    return z


def langevin_chain(
    log_density: LogDensity,
    z: torch.Tensor,
    *,
    n_steps: int,
    step_size: float,
    noise: bool,
    who: str = "langevin",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Run ``n_steps`` :func:`langevin_update` steps in place on ``z`` [B, *Z] (a detached, normal tensor).

    Exactly one gradient evaluation per step; the value ``log p`` is computed only with the last
    gradient.  Must be called inside :func:`dynamics_mode`.

    Returns:
        ``(z, grad, value)``: the final states (detached), and the last gradient [B, *Z] and
        log-density [B] evaluated (both at the state before the last update; ``None`` when
        ``n_steps == 0``).
    """
    evaluate = gradient_evaluator(log_density, who)
    grad: torch.Tensor | None = None
    value: torch.Tensor | None = None
    for k in range(n_steps):
        value, grad = evaluate(z, k == n_steps - 1)
        langevin_update(z, grad, step_size=step_size, noise=noise, generator=generator)
    return z, grad, value


# ----------------------------------------------------------------------------------------------
# Hamiltonian Monte Carlo


def hmc_step(
    log_density: LogDensity,
    z: torch.Tensor,
    logp: torch.Tensor,
    grad: torch.Tensor,
    step: torch.Tensor,
    n_leapfrog: int,
    generator: torch.Generator | None = None,
    *,
    who: str = "hmc",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Metropolis-corrected HMC transition (module docstring) from cached values at ``z``.

    The form for a sampler's loop: ``logp`` [B] and ``grad`` [B, *Z] at the current ``z`` [B, *Z]
    are carried over from the previous transition, so one transition costs ``n_leapfrog``
    gradient evaluations.  Must be called inside :func:`dynamics_mode` with ``z`` detached.

    Args:
        step: per-chain leapfrog step sizes [B].
        n_leapfrog: leapfrog steps ``L`` (>= 1).
        generator: for the momenta and the accept draws (the global generator when ``None``).

    Returns:
        ``(z, logp, grad, accept_prob)`` of the new states (detached); ``accept_prob`` [B] is the
        Metropolis acceptance probability ``min(1, exp(-dH))`` (0 for a non-finite proposal).
    """
    eps = per_chain(step, z)
    p0 = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    p = p0 + 0.5 * eps * grad
    evaluate = gradient_evaluator(log_density, who)
    z_new, grad_new = z, grad
    value: torch.Tensor | None = None
    for i in range(n_leapfrog):
        last = i == n_leapfrog - 1
        z_new = z_new + eps * p
        value, grad_new = evaluate(z_new, last)  # the value only where the Metropolis test needs it
        p = p + (0.5 * eps if last else eps) * grad_new
    if value is None:
        raise ValueError(f"sampler {who!r}: n_leapfrog must be >= 1, got {n_leapfrog}")
    logp_new = value
    log_ratio = (logp_new - 0.5 * per_chain_sq_norm(p)) - (logp - 0.5 * per_chain_sq_norm(p0))
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    accept_prob = log_ratio.clamp(max=0.0).exp()
    u = torch.rand(accept_prob.shape, generator=generator, device=z.device, dtype=z.dtype)
    accept = u < accept_prob
    keep = per_chain(accept, z)
    return (
        torch.where(keep, z_new, z),
        torch.where(accept, logp_new, logp),
        torch.where(keep, grad_new, grad),
        accept_prob,
    )


def _as_step(step_size: float | torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A float or [B] tensor of step sizes as a fresh [B] tensor on ``z``'s device (a normal tensor
    even when the caller made ``step_size`` under inference mode)."""
    step = torch.as_tensor(step_size, dtype=z.dtype, device=z.device).detach()
    if step.dim() == 0:
        step = step.expand(z.shape[0])
    if tuple(step.shape) != (z.shape[0],):
        raise ValueError(
            f"hmc_transition: step_size must be a float or a tensor [B={z.shape[0]}], got {tuple(step.shape)}"
        )
    return step.clone()


def hmc_transition(
    log_density: LogDensity,
    z: torch.Tensor,
    step_size: float | torch.Tensor,
    n_leapfrog: int,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Metropolis-corrected HMC transition of every chain, self-contained (e.g. for AIS).

    Leaves ``log_density`` invariant for any fixed ``step_size``.  Works under ``no_grad`` and
    ``inference_mode`` callers; ``z`` is not modified.  Costs ``n_leapfrog + 1`` gradient
    evaluations (one at the start, then :func:`hmc_step`).

    Args:
        z: current states [B, *Z].
        step_size: a float, or a tensor [B] of per-chain leapfrog step sizes.
        n_leapfrog: leapfrog steps per transition (>= 1).
        generator: for the momenta and the accept draws (the global generator when ``None``).

    Returns:
        ``(z_new [B, *Z] detached, accept_prob [B])``.

    Raises:
        ValueError: ``n_leapfrog < 1`` or ``step_size`` of the wrong shape.
    """
    if n_leapfrog < 1:
        raise ValueError(f"hmc_transition: n_leapfrog must be >= 1, got {n_leapfrog}")
    with dynamics_mode():
        z = start_chains(z, "hmc").requires_grad_(True)
        logp, grad = log_density_and_grad(log_density, z, "hmc")
        z_new, _, _, accept_prob = hmc_step(
            log_density, z.detach(), logp, grad, _as_step(step_size, z), n_leapfrog, generator
        )
    return z_new, accept_prob
