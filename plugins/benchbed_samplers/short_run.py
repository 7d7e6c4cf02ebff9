"""Short-run inference dynamics with a learned step size (SRI, Nijkamp et al. 2019).

Dynamics (``sample``): ``K = n_steps`` Langevin steps from the prior draws ``z0 ~ N(0, I)``::

    z_{k+1} = z_k + (s^2/2) grad_z log p(x, z_k) + s eps_k        (eps_k ~ N(0, I) when noise=True)

whose end point has the distribution ``q_s(z | x)``.  SRI chooses ``s`` by minimising
``KL(q_s(z|x) || p(z|x))``.  ``learn`` takes one Adam step on ``log s`` along an estimate of

    F(s) = E_q[-log p(x, z_K)] - H(q_s) = KL(q_s || p(.|x)) - log p(x),

``log p(x)`` not depending on ``s``.  The energy term is a reparameterised Monte Carlo average: the
noise ``eps_k`` and ``z0`` are held fixed and gradients flow through the unrolled dynamics to ``s``.

**Entropy estimator (what the paper leaves open; our choice).**  Each chain carries the covariance of
the dynamics linearised along its own trajectory: with ``J_k = I + (s^2/2) H(z_k)`` and ``H`` the
Hessian of ``log p(x, z)`` at ``z_k``,

    C_0 = I,    C_{k+1} = J_k C_k J_k^T + s^2 I [noise term only when noise=True],
    H(q_s) ~= mean over chains of 1/2 log det(2 pi e C_K).

Why: it is *exact* in two cases that matter.  (1) ``noise=False``: the map ``z0 -> z_K`` is
deterministic and ``log det C_K = 2 sum_k log|det J_k|``, so this is the change-of-variables entropy
``H(p0) + E sum_k log|det J_k|`` (an unbiased estimate of ``H(q_s)``).  (2) Gaussian posteriors
(linear decoder, Gaussian prior and noise): the dynamics are linear, ``q_s`` is Gaussian with
covariance exactly ``C_K``, and the estimate equals ``H(q_s)`` for every chain.  Otherwise (noise on
and a non-Gaussian posterior) it is a local-linearisation (extended-Kalman) approximation; its bias
is of the order of the change of the Hessian across the spread of the chains, and it is neither a
bound above nor below in general.  Alternatives we rejected: the auxiliary-path bound of Salimans et
al. 2015 with a Langevin backward kernel (tested on a linear-Gaussian posterior: so loose during the
contraction from the prior that its minimiser sat near the stability limit, ~1.5x the true optimal
step), and Gaussian fits across chains (need more chains per ``x`` than latent dimensions).

Cost of ``learn``: each step needs the full Hessian (``d`` Hessian-vector products, batched with
``is_grads_batched``) kept in the graph, then a backward pass through everything (third
derivatives of ``log p``): about ``d`` times the cost of ``sample``.  ``learn`` therefore refuses
latent sizes above ``max_learn_dim``; models call it on a small sub-batch (a few examples give a good
gradient for one scalar).  It assumes ``log_density`` treats chains independently (no batch-norm
in training mode inside it) and that ``z0`` are ``N(0, I)`` draws (``C_0 = I``).

API: ``sample(log_density, z0)`` runs the dynamics at the current ``s`` (no learning);
``learn(log_density, z0) -> float`` takes one optimiser step on ``log_step_size`` and returns the
estimate of ``F(s)`` before the step (``KL - log p(x)``, averaged over chains).  The sampler is an
``nn.Module``: a model that keeps it as a sub-module gets ``log_step_size`` into its ``state_dict``
(and its parameter count) and should put ``sampler.optimizer`` in ``self.optimizers`` so that
checkpoints carry the Adam state; it must not hand ``log_step_size`` to its own optimisers.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt
from torch import nn

from benchbed.blocks.transitions import dynamics_mode, log_density_and_grad, log_density_checked, start_chains
from benchbed.contracts import LogDensity, SampleResult
from benchbed_samplers._common import apply_overrides
from benchbed_samplers.langevin import run_langevin

_WHO = "short_run"
_LOG_2PI_E = math.log(2.0 * math.pi) + 1.0


def hessian_rows(grad: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-chain Hessians [B, d, d] of a log-density whose gradient ``grad`` [B, d] was taken at ``z``.

    Chains are independent, so the Hessian-vector product with ``e_i`` in every chain at once gives
    row ``i`` of every chain's Hessian.  The graph is kept (``create_graph``) so that the result can
    be differentiated again.
    """
    d = z.shape[1]
    basis = torch.eye(d, dtype=z.dtype, device=z.device).unsqueeze(1).expand(d, z.shape[0], d)
    try:
        (rows,) = torch.autograd.grad(grad, z, grad_outputs=basis, is_grads_batched=True, create_graph=True)
    except RuntimeError:
        # Some operators have no batching rule for their backward: fall back to a loop.
        rows = torch.stack(
            [torch.autograd.grad(grad, z, grad_outputs=basis[i], create_graph=True)[0] for i in range(d)]
        )
    return rows.transpose(0, 1)


class ShortRun(nn.Module):
    """Short-run Langevin inference whose step size is learned by minimising KL (module docstring).

    Args:
        n_steps: dynamics steps ``K`` (SRI code: 25).
        step_size: initial step size ``s`` (SRI code: 0.05); learned afterwards.
        noise: Langevin noise (SRI code: on); ``False`` gives gradient ascent on ``log p``.
        lr: Adam learning rate on ``log s``.
        max_learn_dim: largest latent size (``prod(Z)``) ``learn`` accepts (its cost grows ~d).
    """

    def __init__(
        self,
        *,
        n_steps: Annotated[int, Gt(0)] = 25,
        step_size: Annotated[float, Gt(0)] = 0.05,
        noise: bool = True,
        lr: Annotated[float, Gt(0)] = 0.01,
        max_learn_dim: Annotated[int, Ge(0)] = 64,
    ) -> None:
        super().__init__()
        if n_steps < 1 or not step_size > 0 or not lr > 0:
            raise ValueError(
                f"sampler 'short_run': need n_steps >= 1, step_size > 0, lr > 0; got n_steps={n_steps}, "
                f"step_size={step_size}, lr={lr}"
            )
        self.n_steps = n_steps
        self.noise = noise
        self.lr = lr
        self.max_learn_dim = max_learn_dim
        self.log_step_size = nn.Parameter(torch.tensor(math.log(step_size)))
        self._optimizer: torch.optim.Optimizer | None = None

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """Adam on ``log_step_size``, built on first use (the first optimiser of a process is slow to
        build, and a constructor does no work)."""
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam([self.log_step_size], lr=self.lr)
        return self._optimizer

    @property
    def step_size(self) -> float:
        """The current (learned) step size ``s``."""
        return float(self.log_step_size.detach().exp())

    def extra_repr(self) -> str:
        return f"n_steps={self.n_steps}, step_size={self.step_size:.4g}, noise={self.noise}, lr={self.lr}"

    def sample(
        self,
        log_density: LogDensity,
        z0: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        **overrides: Any,
    ) -> SampleResult:
        """Run the dynamics at the current step size from ``z0`` [B, *Z]; no learning.

        Works under ``no_grad`` / ``inference_mode``.  ``overrides``: ``n_steps`` or ``noise``.
        Diagnostics: ``steps``, ``step_size``, ``final_log_density`` (mean), ``grad_norm``.
        """
        cfg = apply_overrides({"n_steps": self.n_steps, "noise": self.noise}, overrides, _WHO)
        return run_langevin(
            log_density,
            z0,
            n_steps=int(cfg["n_steps"]),
            step_size=self.step_size,
            noise=bool(cfg["noise"]),
            who=_WHO,
            generator=generator,
        )

    def free_energy(
        self, log_density: LogDensity, z0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-chain estimate of ``F(s) = KL(q_s || p) - log p(x)`` [B], differentiable in ``log s``.

        Call inside ``dynamics_mode()``; ``z0`` [B, *Z] must be ``N(0, I)`` draws.
        """
        shape = z0.shape
        d = math.prod(shape[1:])
        if d > self.max_learn_dim:
            raise ValueError(
                f"sampler 'short_run': learn() needs the full {d}x{d} Hessian per step; latent size {d} "
                f"exceeds max_learn_dim={self.max_learn_dim} (raise it, or keep the step size fixed)"
            )

        def flat_log_density(zf: torch.Tensor) -> torch.Tensor:
            return log_density(zf.view(shape))

        s = self.log_step_size.exp().to(device=z0.device, dtype=z0.dtype)
        drift = 0.5 * s * s
        z = start_chains(z0, _WHO).reshape(shape[0], d).requires_grad_(True)
        # The covariance recursion runs in float64: a step near the stability limit makes J_k nearly
        # singular and C_K badly conditioned, and float32 then loses its small eigenvalues.
        eye = torch.eye(d, dtype=torch.float64, device=z0.device)
        cov = eye.expand(shape[0], d, d)
        log_det_jac = torch.zeros(shape[0], dtype=torch.float64, device=z0.device)
        for _ in range(self.n_steps):
            _, grad = log_density_and_grad(flat_log_density, z, _WHO, create_graph=True)
            # Jacobian of the deterministic part of the update, I + (s^2/2) H(z_k).
            jac = eye + drift.double() * hessian_rows(grad, z).double()
            z = z + drift * grad
            if self.noise:
                cov = jac @ cov @ jac.transpose(1, 2) + (s * s).double() * eye
                eps = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
                z = z + s * eps
            else:
                # Change of variables: log det C_K = 2 sum_k log|det J_k| (no products to underflow).
                log_det_jac = log_det_jac + torch.linalg.slogdet(jac).logabsdet
        log_det_cov = torch.linalg.slogdet(cov).logabsdet if self.noise else 2.0 * log_det_jac
        entropy = (0.5 * (d * _LOG_2PI_E + log_det_cov)).to(z.dtype)
        return -log_density_checked(flat_log_density, z, _WHO) - entropy

    def learn(self, log_density: LogDensity, z0: torch.Tensor, *, generator: torch.Generator | None = None) -> float:
        """One Adam step on ``log_step_size`` along the estimated ``dF/d log s``; returns ``F`` (mean).

        Only ``log_step_size`` receives a gradient (the model's weights are untouched).  When the
        estimate is not finite (the chains blew up: the step is past the stability limit) the step
        size is halved instead and the non-finite value is returned.
        """
        with dynamics_mode():
            value = self.free_energy(log_density, z0, generator=generator).mean()
            (grad,) = torch.autograd.grad(value, self.log_step_size)
            if not (torch.isfinite(value) and torch.isfinite(grad)):
                with torch.no_grad():
                    self.log_step_size.sub_(math.log(2.0))
                return float(value.detach())
            self.optimizer.zero_grad(set_to_none=True)
            self.log_step_size.grad = grad
            self.optimizer.step()
        return float(value.detach())
