"""Helpers shared by the samplers: grad-enabled contexts, chain starts, one-gradient evaluation.

Every sampler may be called by a metric under ``torch.no_grad()`` or ``torch.inference_mode()``.
Gradients with respect to ``z`` are then switched back on locally (:func:`dynamics_mode`), and the
start ``z0`` is copied into a normal tensor (:func:`start_chains`), because a tensor created in
inference mode can never take part in autograd.

Gradients are always taken with ``torch.autograd.grad(..., z)``: autograd then only walks the part of
the graph that leads to ``z``, so a model's weights (which keep ``requires_grad=True``) get no
gradient work and no ``.grad`` is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from benchbed.contracts import LogDensity
from benchbed.errors import Diverged

_INFERENCE_HINT = (
    "a tensor captured by the log-density closure was created under torch.inference_mode() and "
    "cannot be saved for backward; create it under torch.no_grad() instead, or pass "
    "x.clone() made inside `with torch.inference_mode(False):`"
)


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
    modified in place.

    Raises:
        ValueError: ``z0`` is not a floating tensor with a batch dimension.
    """
    if not isinstance(z0, torch.Tensor) or z0.dim() < 2 or not z0.is_floating_point():
        shape = tuple(z0.shape) if isinstance(z0, torch.Tensor) else type(z0).__name__
        raise ValueError(f"sampler {who!r}: z0 must be a floating tensor [B, *Z] with B chains, got {shape}")
    return z0.detach().clone()


def log_density_checked(log_density: LogDensity, z: torch.Tensor, who: str) -> torch.Tensor:
    """``log_density(z)`` with its shape checked: it must return one value per chain, ``[B]``."""
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
    when differentiating through the dynamics, as ``short_run.learn`` does); otherwise both returned
    tensors are detached and the graph is freed at once.
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


#: ``(z, want_value) -> (log p [B] or None, grad [B, *Z])``: see :func:`gradient_evaluator`.
Evaluator = Callable[[torch.Tensor, bool], tuple[torch.Tensor | None, torch.Tensor]]


def gradient_evaluator(log_density: LogDensity, who: str) -> Evaluator:
    """The cheapest way to get ``grad_z log p(z)`` (and, on request, ``log p(z)``) of ``log_density``.

    A log-density that offers ``value_and_grad`` (:class:`benchbed.contracts.GradLogDensity`) is
    asked directly: no autograd tape, and no value work on the steps that only need the gradient
    (all but the last step of a Langevin chain, all but the last leapfrog step of an HMC
    trajectory).  Any other callable gets one autograd pass per call (:func:`log_density_and_grad`).
    ``z`` is never made to require grad, so the caller may update it in place afterwards.

    Raises:
        ValueError: the fast path returned a gradient whose shape is not ``z``'s.
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
    """Raise :class:`benchbed.errors.Diverged` when a chain left the finite numbers.

    One check per call (not per step) so that the chains never wait on a device sync.
    """
    if not bool(torch.isfinite(z).all()):
        raise Diverged(
            f"sampler {who!r}: non-finite latent after {n_steps} steps with step_size={step_size:g}; "
            "the log-density's gradient exploded"
        )


def per_chain_sq_norm(v: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean norm of each chain's entry: [B, *Z] -> [B]."""
    return v.flatten(1).pow(2).sum(1)


def apply_overrides(settings: Mapping[str, Any], overrides: Mapping[str, Any], who: str) -> dict[str, Any]:
    """Per-call overrides of a sampler's settings (``sampler.sample(f, z0, n_steps=200)``).

    Raises:
        TypeError: an override names a setting the sampler does not have.
    """
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise TypeError(
            f"sampler {who!r}: unknown sample() option(s) {unknown}; valid: {sorted(settings)} and 'generator'"
        )
    return {**settings, **{k: v for k, v in overrides.items() if v is not None}}
