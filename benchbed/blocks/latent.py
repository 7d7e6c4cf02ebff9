"""Base class of generator models whose inference is Langevin-type posterior dynamics.

The models built on it (alternating back-propagation, short-run inference, the latent-space EBM
prior) share the observation model

    x_m = g(z) + eps,   eps ~ N(0, sigma^2 I)        (working scale, :mod:`benchbed.blocks.scaling`)

(Han et al., AAAI 2017, eq. 1; Pang et al., NeurIPS 2020, eq. 1) and infer z by running the suite's
posterior sampler on

    log p(z | x) = log p(x | z) + log p(z) + const

started from the prior's base N(0, I).  Subclasses choose the prior (:meth:`~DynamicsGenerator.log_prior`,
:meth:`~DynamicsGenerator.sample_latent`) and the learning step.  Densities given to metrics are
data-scale nats.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from benchbed.blocks.chains import run_chains
from benchbed.blocks.fused import GradFn, fused_log_density, jet
from benchbed.blocks.gaussian import std_normal_log_prob
from benchbed.blocks.scaling import DataScale
from benchbed.contracts import Capability, LogDensity, Sampler, SetupContext
from benchbed.model import LatentModel

__all__ = ["EVAL_CHUNK", "GENERATOR_CAPABILITIES", "DynamicsGenerator"]

#: Largest batch of chains one evaluation pass runs (bounds memory for big sample counts).
EVAL_CHUNK = 1000

#: Capabilities every generator model with posterior dynamics offers.
GENERATOR_CAPABILITIES = frozenset(
    {
        Capability.SAMPLE,
        Capability.INFER,
        Capability.RECONSTRUCT,
        Capability.LOG_JOINT,
        Capability.LOG_PRIOR,
        Capability.ANOMALY_SCORE,
    }
)


class DynamicsGenerator(LatentModel):
    """Base class: a generator ``self.generator`` with Gaussian noise and posterior dynamics.

    Subclasses set ``latent_dim``, ``obs_std`` and ``infer_rounds`` in ``__init__``, and in ``setup``
    call :meth:`_setup_common` and assign ``self.generator`` (``[B, Z] -> [B, *D]`` working scale)
    and ``self.posterior_sampler``.
    """

    capabilities = GENERATOR_CAPABILITIES

    #: Whether the model may hand samplers fused log-densities (:mod:`benchbed.blocks.fused`).  A
    #: subclass whose sampler differentiates twice (e.g. learns its step size through the chain)
    #: sets this to ``False``: fused gradients are not differentiable again.
    supports_fused: ClassVar[bool] = True

    #: Name used in error messages ("model 'abp'").
    model_name = "generator"

    latent_dim: int
    obs_std: float
    infer_rounds: int
    generator: nn.Module
    posterior_sampler: Sampler
    fused: bool

    def _setup_common(self, ctx: SetupContext, image_range: str = "pm1") -> None:
        """Device, data scale, engine options and checks shared by every subclass.

        Sets ``self.fused`` from ``ctx.engine.fused`` (``None`` = on) and :attr:`supports_fused`.

        Raises:
            ValueError: no sampler provider, ``obs_std <= 0`` or ``infer_rounds < 1``.
        """
        if ctx.sampler is None:
            raise ValueError(f"model {self.model_name!r} needs a sampler provider (ModelSpec.uses_sampler=True)")
        if self.obs_std <= 0:
            raise ValueError(f"model {self.model_name!r}: obs_std must be > 0, got {self.obs_std}")
        if self.infer_rounds < 1:
            raise ValueError(f"model {self.model_name!r}: infer_rounds must be >= 1, got {self.infer_rounds}")
        self.device = ctx.device
        self.fused = self.supports_fused and ctx.engine.fused is not False
        self.scale = DataScale(ctx.info, image_range)
        self._inv_two_var = 1.0 / (2.0 * self.obs_std**2)
        # log N normaliser of the D coordinates plus the scale map's Jacobian: a constant in z.
        self._lik_const = (
            -self.scale.dim * (math.log(self.obs_std) + 0.5 * math.log(2 * math.pi)) + self.scale.log_det()
        )

    # --------------------------------------------------------------------------- densities
    def sample_prior_base(self, n: int) -> torch.Tensor:
        """z ~ N(0, I): [n, Z] (the prior itself when Gaussian, its base p0 for an EBM prior)."""
        return torch.randn(n, self.latent_dim, device=self.device)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I): [B, Z] -> [B].  An EBM prior overrides it with f(z) + log p0(z)."""
        return std_normal_log_prob(z)

    def sq_err(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """||x_m - g(z)||^2 per example: [B]."""
        return (x_m - self.generator(z)).pow(2).flatten(1).sum(1)

    def log_lik_m(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) of the data-scale x given its working-scale ``x_m``: [B] nats."""
        return self._lik_const - self._inv_two_var * self.sq_err(x_m, z)

    def posterior_log_density(self, x_m: torch.Tensor) -> LogDensity:
        """``z -> log p(x|z) + log_prior(z)`` [B], up to a constant (one graph, one gradient per step).

        With ``self.fused`` the gradient comes from :mod:`benchbed.blocks.fused` (same value and
        gradient, fewer ops); otherwise it is a plain autograd closure (needed by samplers that take
        Hessians).
        """
        if self.fused:
            return fused_log_density(self._fused_fn(x_m))

        def log_density(z: torch.Tensor) -> torch.Tensor:
            return self.log_prior(z) - self._inv_two_var * self.sq_err(x_m, z)

        return log_density

    def _energy_jet(self) -> Any:
        """Forward + input-VJP of the prior's f(z) (``None`` for the plain N(0, I) prior)."""
        return None

    def _fused_fn(self, x_m: torch.Tensor | None) -> GradFn:
        """``(z, need_value, need_grad) -> (log p, grad)`` of the posterior (of the prior when ``x_m``
        is None); either output is ``None`` when not asked for.

        log p = [f(z)] + log N(z; 0, I) - ||x_m - g(z)||^2 / (2 sigma^2)
        grad  = [grad f(z)] - z + J_g(z)^T (x_m - g(z)) / sigma^2
        """
        e_jet, g_jet, inv = self._energy_jet(), jet(self.generator), self._inv_two_var
        norm_const = 0.5 * math.log(2 * math.pi) * self.latent_dim  # of log N(z; 0, I)

        def fn(z: torch.Tensor, need_value: bool, need_grad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            value = (z * z).sum(1).mul_(-0.5).sub_(norm_const) if need_value else None  # log N(z; 0, I)
            grad = None  # accumulated out of place: a VJP may return a view of a weight
            if e_jet is not None:
                f, e_tape = e_jet.forward(z, need_grad, need_value)
                if value is not None:
                    value = value.add_(f.reshape(-1))
                if need_grad:
                    grad = e_jet.vjp_sum(e_tape) - z
            if x_m is not None:
                g, g_tape = g_jet.forward(z, need_grad)
                assert g is not None  # need_out defaults to True
                r = x_m - g
                if value is not None:
                    value = value.sub_(r.pow(2).flatten(1).sum(1).mul_(inv))
                if need_grad:
                    g_grad = g_jet.vjp(g_tape, r.mul_(2.0 * inv))  # r is not needed afterwards
                    grad = g_grad - z if grad is None else grad.add_(g_grad)
            if need_grad and grad is None:
                grad = -z
            return value, grad

        return fn

    def _networks(self) -> tuple[nn.Module, ...]:
        """Modules frozen while chains run (subclasses add their energy nets)."""
        return (self.generator,)

    def infer_m(self, x_m: torch.Tensor, z0: torch.Tensor | None = None, rounds: int = 1) -> torch.Tensor:
        """Posterior dynamics from ``z0`` (default: N(0, I)) for working-scale ``x_m``: [B, Z]."""
        z0 = self.sample_prior_base(x_m.shape[0]) if z0 is None else z0
        return run_chains(
            self.posterior_sampler, self.posterior_log_density(x_m), z0, *self._networks(), rounds=rounds
        ).z

    def sample_latent(self, n: int) -> torch.Tensor:
        """z from the model's prior: [n, Z].  N(0, I) here; an EBM prior runs its prior sampler."""
        return self.sample_prior_base(n)

    # --------------------------------------------------------------------------- capabilities
    def sample(self, n: int) -> torch.Tensor:
        """g(z), z from the prior, in the data scale: [n, *D] (the noise-free mean, as the papers show).

        Chains run in chunks of :data:`EVAL_CHUNK` so that metrics may ask for many samples.
        """
        sizes = [min(EVAL_CHUNK, n - i) for i in range(0, n, EVAL_CHUNK)] or [0]
        return torch.cat([self.scale.to_data(self.generator(self.sample_latent(k))) for k in sizes])

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior dynamics from the prior base, ``infer_rounds`` sampler runs: [B, *D] -> [B, Z].

        Runs in chunks of :data:`EVAL_CHUNK` examples (chains are independent, so this changes no
        distribution, only the memory held by one pass).
        """
        x_m = self.scale.to_model(x)
        if x_m.shape[0] <= EVAL_CHUNK:
            return self.infer_m(x_m, rounds=self.infer_rounds)
        return torch.cat([self.infer_m(c, rounds=self.infer_rounds) for c in x_m.split(EVAL_CHUNK)])

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """g(infer(x)) in the data scale: [B, *D]."""
        return self.scale.to_data(self.generator(self.infer(x)))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) + log_prior(z) in data-scale nats: [B] (an EBM prior's log Z left out)."""
        return self.log_lik_m(self.scale.to_model(x), z) + self.log_prior(z)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x, z) at z inferred by posterior dynamics (the score of the latent-EBM papers): [B]."""
        return -self.log_joint(x, self.infer(x))

    def extra_state(self) -> dict[str, Any]:
        """Learned sampler parameters (e.g. short-run step sizes) are module parameters already."""
        return {}
