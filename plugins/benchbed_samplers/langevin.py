"""Short-run (unadjusted) Langevin dynamics on a latent log-density.

The update of LEBM, ABP's inferential back-propagation and SRI (the transition itself is
:func:`benchbed.blocks.transitions.langevin_update`)::

    z_{k+1} = z_k + (s^2 / 2) * grad_z log p(z_k) + s * eps_k,     eps_k ~ N(0, I)

with ``noise=False`` giving plain gradient ascent with learning rate ``s^2/2``.  There is no
Metropolis correction: the chains are short-run and the bias is part of the method (Nijkamp et al.
2019, §9).

Cost: exactly one gradient evaluation of ``log_density`` per step and nothing else: a
log-density that offers ``value_and_grad`` (:class:`benchbed.contracts.GradLogDensity`) is asked
for the gradient directly, any other one gets one ``torch.autograd.grad(log p(z).sum(), z)`` (no
retained graph, no weight gradients).  ``final_log_density`` is the value computed together with
the last gradient, i.e. at the state before the last update, so reporting it costs no extra pass
(a full extra generator forward on a 32x32 model is ~2% of a training iteration).

Chains start at the given ``z0``.  With ``persistent=True`` (ABP's warm-started chains) the sampler
still keeps nothing: the flag tells the model to pass its stored chain states as ``z0`` and to store
the returned ``z`` back (``bank[index] = result.z``), so the chain bank lives in the model's
checkpoint and the sampler stays stateless.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt

from benchbed.blocks.transitions import check_finite, dynamics_mode, langevin_chain, log_density_checked, start_chains
from benchbed.contracts import LogDensity, SampleResult
from benchbed_samplers._common import apply_overrides


def run_langevin(
    log_density: LogDensity,
    z0: torch.Tensor,
    *,
    n_steps: int,
    step_size: float,
    noise: bool,
    who: str,
    generator: torch.Generator | None = None,
) -> SampleResult:
    """:func:`benchbed.blocks.transitions.langevin_chain` from a copy of ``z0`` with the checks and
    diagnostics every Langevin-type sampler reports: ``steps``, ``step_size``, ``final_log_density``
    and ``grad_norm`` (see :meth:`Langevin.sample`).  Works under ``no_grad`` / ``inference_mode``.

    Raises:
        benchbed.errors.Diverged: a chain left the finite numbers.
    """
    with dynamics_mode():
        z, grad, final = langevin_chain(
            log_density,
            start_chains(z0, who),
            n_steps=n_steps,
            step_size=step_size,
            noise=noise,
            who=who,
            generator=generator,
        )
        check_finite(z, who, step_size, n_steps)
        if final is None:  # no steps: the value at z0 itself
            with torch.no_grad():
                final = log_density_checked(log_density, z, who)
    return SampleResult(
        z=z,
        diagnostics={
            "steps": float(n_steps),
            "step_size": float(step_size),
            "final_log_density": float(final.mean()),
            "grad_norm": math.nan if grad is None else float(grad.flatten(1).norm(dim=1).mean()),
        },
    )


class Langevin:
    """Short-run Langevin sampler (see the module docstring for the update and the cost).

    Args:
        n_steps: Langevin steps per call (LEBM: 60 prior / 20 posterior; SRI: 25).
        step_size: ``s`` in the update; the drift is ``s^2/2`` and the noise std is ``s``.
        noise: add the ``s * eps`` term; ``False`` gives gradient ascent on ``log p``.
        persistent: a declaration for the model (ABP): warm-start each example's chain from its
            stored state.  The sampler itself keeps no state either way.
    """

    def __init__(
        self,
        *,
        n_steps: Annotated[int, Ge(0)] = 20,
        step_size: Annotated[float, Gt(0)] = 0.1,
        noise: bool = True,
        persistent: bool = False,
    ) -> None:
        if n_steps < 0:
            raise ValueError(f"sampler 'langevin': n_steps must be >= 0, got {n_steps}")
        if not step_size > 0:
            raise ValueError(f"sampler 'langevin': step_size must be > 0, got {step_size}")
        self.n_steps = n_steps
        self.step_size = step_size
        self.noise = noise
        self.persistent = persistent

    def __repr__(self) -> str:
        return (
            f"Langevin(n_steps={self.n_steps}, step_size={self.step_size}, noise={self.noise}, "
            f"persistent={self.persistent})"
        )

    def sample(
        self,
        log_density: LogDensity,
        z0: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        **overrides: Any,
    ) -> SampleResult:
        """Run the chains from ``z0`` [B, *Z] on ``log_density`` (``z -> [B]``).

        Works under ``torch.no_grad()`` and ``torch.inference_mode()``; ``z0`` is never modified.

        Args:
            generator: optional ``torch.Generator`` for the noise (reproducible chains).
            **overrides: ``n_steps``, ``step_size`` or ``noise`` for this call only.

        Returns:
            ``SampleResult`` with ``z`` [B, *Z] (detached) and diagnostics ``steps``, ``step_size``,
            ``final_log_density`` (mean over chains, at the state before the last update, where
            the last gradient was taken; at ``z0`` when ``n_steps == 0``), ``grad_norm`` (mean
            norm of that gradient) and ``persistent``.
        """
        cfg = apply_overrides(
            {"n_steps": self.n_steps, "step_size": self.step_size, "noise": self.noise}, overrides, "langevin"
        )
        result = run_langevin(
            log_density,
            z0,
            n_steps=int(cfg["n_steps"]),
            step_size=float(cfg["step_size"]),
            noise=bool(cfg["noise"]),
            who="langevin",
            generator=generator,
        )
        result.diagnostics["persistent"] = float(self.persistent)
        return result
