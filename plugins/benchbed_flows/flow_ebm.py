"""EBM with a flow backbone, sampled by neural-transport MCMC (Nijkamp, Gao, Hill, Han, Zhu and Wu,
arXiv 2006.06897, "Learning energy-based model with flow-based backbone by neural transport MCMC").

Model: an exponential tilting of a flow q (:mod:`benchbed_flows.density`),

    p_θ(x) = exp(f_θ(x)) q(x) / Z(θ),     Z(θ) = E_q[exp f_θ(x)],

with f_θ(x) = g_θ(y(x)), g an MLP on the flow's coordinates y (:mod:`benchbed_flows.space`).

Sampling (neural transport): with y = T(z) the flow's generator and q its push-forward of N(0, I), the
pull-back of p to the latent space is

    log p_Z(z) = log p(T(z)) + log |det ∂T/∂z| = f_θ(T(z)) + log N(z; 0, I) - log Z(θ),

because q(T(z)) |det ∂T/∂z| = N(z; 0, I) exactly; the flow has absorbed the geometry of the data, so the
latent target is close to a standard Gaussian and Langevin chains move between modes that are far apart,
and separated by low density, in data space.  Chains start at z ~ N(0, I) (short-run, non-persistent) and
x = T(z) is the draw.  The chains come from the suite's sampler axis (role ``latent``): any sampler that acts
on a tensor log-density works.

Learning: the flow is trained first by maximum likelihood (the first ``flow_fraction`` of the budget, as in
model ``flow``) and then fixed; θ then follows the maximum-likelihood gradient (Z's gradient is E_p[∇f])

    ∇_θ E_data[log p_θ(x)] = E_data[∇_θ f_θ(x)] - E_{p_θ}[∇_θ f_θ(x)],

with the model expectation over the short-run chains' draws; a small penalty ``reg`` (E f(x)^2 over both
batches) keeps f near zero where the data give it no reason to move (the tilt is otherwise defined up to a
constant).

Capabilities: ``sample`` (latent chains), ``anomaly_score`` = -(f(x) + log q(x)), the unnormalised -log p
(Z does not depend on x).  No ``log_likelihood``: Z is only estimated (:meth:`ebm_log_partition`, importance
sampling from q), so the exact-likelihood capability would be a false claim; :meth:`ebm_log_likelihood`
gives the estimate outside the capability table.

Engine option ``fused`` (default on; the same computation up to floating-point rounding): the flow's
coupling layers are evaluated block-wise (:mod:`benchbed_flows.coupling`), in the flow phase with
hand-written spline derivatives, in the energy phase from one parameter snapshot per step (the flow is
fixed then); the networks are frozen during the chains, and the sampler gets a log-density with
``value_and_grad`` (:class:`_LatentTarget`) that uses no autograd tape: a hand-written reverse pass
through T(z) and the energy MLP; Adam is torch's fused implementation (:func:`benchbed_flows.flow.adam`).
``fused=False`` is the reference: zuko's objects, one autograd pass through everything, the default Adam.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt, Interval

from benchbed.blocks.chains import frozen
from benchbed.blocks.fused import jet
from benchbed.blocks.partition import PartitionEstimate
from benchbed.contracts import Batch, Capability, Sampler, SetupContext
from benchbed.model import LatentModel
from benchbed_flows.coupling import FlowPlan
from benchbed_flows.density import FlowDensity, std_normal_log_prob
from benchbed_flows.energy import energy_mlp, log_partition_is
from benchbed_flows.flow import adam, cosine_lr

#: The model's defaults for its one sampler role (the suite's sampler parameters override them).
LATENT_DEFAULTS: dict[str, Any] = {"n_steps": 40, "step_size": 0.3}


class FlowEBM(LatentModel):
    """Exponentially tilted flow learned by MLE with latent-space (neural transport) chains.

    Args:
        transforms, hidden, bins, levels: the flow (coupling layers, as in model ``flow``).
        energy_hidden: hidden widths of the energy MLP g.
        flow_fraction: fraction of the budget that trains the flow by maximum likelihood; the rest
            trains the energy with the flow fixed.
        lr_flow: Adam learning rate of the flow (cosine decay over its phase).
        lr_ebm: Adam learning rate of the energy.
        reg: weight of the E f^2 penalty.
    """

    capabilities = frozenset({Capability.SAMPLE, Capability.ANOMALY_SCORE})

    def __init__(
        self,
        *,
        transforms: Annotated[int, Gt(0)] = 4,
        hidden: tuple[Annotated[int, Gt(0)], ...] = (64, 64),
        bins: Annotated[int, Ge(2)] = 8,
        levels: Annotated[int | None, Ge(0)] = None,
        energy_hidden: tuple[Annotated[int, Gt(0)], ...] = (128, 128),
        flow_fraction: Annotated[float, Interval(gt=0, lt=1)] = 0.6,
        lr_flow: Annotated[float, Gt(0)] = 1e-3,
        lr_ebm: Annotated[float, Gt(0)] = 1e-4,
        reg: Annotated[float, Ge(0)] = 0.01,
    ) -> None:
        super().__init__()
        self.transforms = transforms
        self.hidden = tuple(hidden)
        self.bins = bins
        self.levels = levels
        self.energy_hidden = tuple(energy_hidden)
        self.flow_fraction = flow_fraction
        self.lr_flow = lr_flow
        self.lr_ebm = lr_ebm
        self.reg = reg

    def setup(self, ctx: SetupContext) -> None:
        """Build the flow, the energy, the two optimisers and the ``latent`` sampler."""
        if self.levels == 1:
            raise ValueError("model 'flow_ebm': levels must be 0 (continuous) or >= 2, got 1")
        if ctx.sampler is None:
            raise ValueError("model 'flow_ebm' needs a sampler (SetupContext.sampler is None)")
        self.device = ctx.device
        self.fused = ctx.engine.fused is not False
        # At least one step of each phase whenever the budget has two steps.
        self.flow_steps = min(max(1, round(self.flow_fraction * ctx.budget.steps)), max(ctx.budget.steps - 1, 1))
        self.density = FlowDensity(ctx.info, ctx.train, transforms=self.transforms, hidden=self.hidden,
                                   bins=self.bins, autoregressive=False, levels=self.levels, fast=self.fused)
        self.energy = energy_mlp(self.density.dim, self.energy_hidden)
        self.to(ctx.device)
        self.optimizers = {
            "flow": adam(self.density.parameters(), lr=self.lr_flow, fused=self.fused),
            "ebm": adam(self.energy.parameters(), lr=self.lr_ebm, betas=(0.5, 0.999), fused=self.fused),
        }
        self.latent_sampler: Sampler = ctx.sampler("latent", **LATENT_DEFAULTS)

    # -- densities ------------------------------------------------------------------------------------
    def tilt(self, y: torch.Tensor) -> torch.Tensor:
        """f = g(y): [B, D] -> [B]."""
        return self.energy(y).squeeze(-1)

    def latent_log_density(self, z: torch.Tensor, plan: FlowPlan | None = None) -> torch.Tensor:
        """log p_Z(z) + log Z = f(T(z)) + log N(z; 0, I): [B, D] -> [B] (the neural-transport target)."""
        return self.tilt(self.density.from_latent(z, plan)) + std_normal_log_prob(z)

    def data_log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) + log Z = f(x) + log q(x) in data-scale nats: [B, *D] -> [B] (the same target in data space)."""
        y, ladj = self.density.space(x)
        return self.tilt(y) + self.density.log_prob_y(y) + ladj

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """z = F(y(x)): [B, *D] -> [B, D]."""
        return self.density.to_latent(self.density.space(x)[0])

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """x = S^{-1}(T(z)) on the data scale, not clamped: [B, D] -> [B, *D]."""
        return self.density.space.inverse(self.density.from_latent(z))

    def latent_chains(self, n: int, plan: FlowPlan | None = None) -> torch.Tensor:
        """Final states z [n, D] of the ``latent`` sampler's chains from z ~ N(0, I).

        ``plan``: the flow's current snapshot (:meth:`FlowDensity.plan` under ``no_grad``), built here when
        not given (``fused`` engine only).
        """
        z0 = torch.randn(n, self.density.dim, device=self.device)
        if not self.fused:
            return self.latent_sampler.sample(self.latent_log_density, z0).z
        # Normal tensors even under a caller's inference mode: the chains differentiate through them.
        with torch.inference_mode(False), torch.no_grad():
            plan = plan if plan is not None else self.density.plan()
        with frozen(self.energy, self.density):
            return self.latent_sampler.sample(_LatentTarget(self, plan), z0).z

    # -- training -------------------------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """Flow phase: one ML step of the flow.  Energy phase: one MLE step of g on data vs chain draws.

        Returns ``flow_nll`` (the flow's -log q on the batch, data-scale nats), ``f_data``, ``f_model``
        (mean tilt on data and on the chains' draws; 0 in the flow phase).
        """
        x = batch.x.to(self.device)
        if step < self.flow_steps:
            opt = self.optimizers["flow"]
            for group in opt.param_groups:
                group["lr"] = cosine_lr(self.lr_flow, step, self.flow_steps)
            plan = self.density.plan(first_order=True)
            loss = -self.density.log_prob(self.density.space.dequantize(x), plan).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"flow_nll": loss.item(), "f_data": 0.0, "f_model": 0.0}
        with torch.no_grad():
            plan = self.density.plan() if self.fused else None  # the flow is fixed in this phase
            y_data, ladj = self.density.space(self.density.space.dequantize(x))
            flow_nll = -(self.density.log_prob_y(y_data, plan) + ladj).mean()
            y_model = self.density.from_latent(self.latent_chains(x.shape[0], plan), plan)
        f_data, f_model = self.tilt(y_data), self.tilt(y_model)
        loss = f_model.mean() - f_data.mean() + self.reg * (f_data.pow(2).mean() + f_model.pow(2).mean())
        opt = self.optimizers["ebm"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"flow_nll": flow_nll.item(), "f_data": f_data.mean().item(), "f_model": f_model.mean().item()}

    # -- normaliser -----------------------------------------------------------------------------------
    @torch.no_grad()
    def ebm_log_partition(self, n: int = 100_000) -> PartitionEstimate:
        """log Z = log E_q[exp f] by importance sampling from q (biased low): ``(log Ẑ, n, ESS)``."""
        return log_partition_is(lambda y: self.tilt(y) + self.density.log_prob_y(y), self.density.sample_y, n)

    @torch.no_grad()
    def ebm_log_likelihood(self, x: torch.Tensor, n: int = 100_000) -> torch.Tensor:
        """log p(x) = f(x) + log q(x) - log Ẑ, data-scale nats, an estimate (log Ẑ biased low): [B]."""
        return self.data_log_density(x.to(self.device)) - self.ebm_log_partition(n)[0]

    # -- capabilities ---------------------------------------------------------------------------------
    def sample(self, n: int) -> torch.Tensor:
        """x = T(z) at the end of the latent chains: [n, *D], float32 on the data scale (images clamped)."""
        with torch.inference_mode(False), torch.no_grad():
            plan = self.density.plan()
        return self.density.space.to_data(self.density.from_latent(self.latent_chains(n, plan), plan)).float()

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """-(f(x) + log q(x)), the unnormalised -log p(x) in nats: [B], higher = more anomalous."""
        return -self.data_log_density(x.to(self.device))


class _LatentTarget:
    """The neural-transport target of one chain run with the flow fixed at ``plan``
    (:class:`benchbed.contracts.GradLogDensity`).

    Calling it is :meth:`FlowEBM.latent_log_density` (differentiable to any order by autograd, for
    samplers that use only that, e.g. ones that differentiate through their own steps).
    :meth:`value_and_grad` uses no autograd tape: the flow's part by the hand-written reverse pass of
    :meth:`FlowDensity.from_latent_and_vjp`, the energy's by the hand-written pass of
    :func:`benchbed.blocks.fused.jet`, and grad_z log N(z; 0, I) = -z: the same gradient up to rounding.
    """

    def __init__(self, model: FlowEBM, plan: FlowPlan | None) -> None:
        self.model, self.plan = model, plan
        self.jet = jet(model.energy)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.latent_log_density(z, self.plan)

    def value_and_grad(self, z: torch.Tensor, *, value: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(log p_Z(z) + log Z or None, its gradient)``: ([B] or None, [B, D]), detached."""
        y, vjp = self.model.density.from_latent_and_vjp(z, self.plan)
        with torch.no_grad():
            out, tape = self.jet.forward(y, True, value)
            grad = vjp(self.jet.vjp_sum(tape)) - z
            if not value:
                return None, grad
            assert out is not None
            return out.squeeze(-1) + std_normal_log_prob(z), grad
