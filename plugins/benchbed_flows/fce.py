"""Flow contrastive estimation (Gao, Nijkamp, Kingma, Xu, Dai and Wu, CVPR 2020, arXiv 1912.00589).

Two models are learned together:

* an EBM p_θ(x) = exp(u_θ(x) + c), with c a learned scalar standing in for -log Z (noise-contrastive
  estimation learns the normaliser as a parameter, Gutmann & Hyvärinen 2010);
* a flow q_α(x) (:mod:`benchbed_flows.density`), which serves as the noise distribution.

The value function (paper, eq. 4) is the log-likelihood of the logistic classifier that tells data from flow
samples (equal numbers of each) with logit h(x) = log p_θ(x) - log q_α(x):

    V(θ, α) = E_data[log σ(h(x))] + E_{x~q_α}[log(1 - σ(h(x)))].

The EBM ascends V (NCE with the flow as noise); the flow descends the *same* V (paper, eq. 5): with the
classifier at its optimum, V = 2 JSD(p_data ‖ q_α) - log 4, so the flow approximately minimises the
Jensen-Shannon divergence.  One step computes V once on a data batch and a reparameterised flow batch,
back-propagates once, and applies the gradient to θ, c and the negated gradient to α (Adam each).

Deviations from the paper, both for benchbed's contracts:

* Normalisability: u_θ(x) = g_θ(y) + log N(y; 0, I) + log |det dy/dx| with y = y(x) the flow's
  coordinates (:mod:`benchbed_flows.space`) and g an MLP.  The Gaussian reference makes ∫ exp(u) finite for
  any MLP of at most linear growth (the paper's bare network need not be normalisable); the Jacobian
  makes u a log-density over the data scale.  In the logit the Jacobian cancels against q's, so the whole
  step runs in y.
* Images are dequantised as for the flow (:mod:`benchbed_flows.space`).
* ``pretrain``: an optional fraction of the budget trains the flow alone by maximum likelihood first
  (0 by default: the paper's joint game from the start).

Engine option ``fused`` (default on): the flow's coupling layers are evaluated block-wise, with one
:class:`~benchbed_flows.coupling.FlowPlan` per step shared by the flow's two uses and splines with
hand-written derivatives (:mod:`benchbed_flows.coupling`: the same values except the flow draws'
log-density, which like the gradients agrees to rounding), and torch's fused Adam
(:func:`benchbed_flows.flow.adam`); ``fused=False`` evaluates the flow with zuko's own objects and uses
the default Adam.

Capabilities (the choice, stated once): ``sample`` draws from the flow; ``log_likelihood`` is the flow's
**exact** log q_α(x), so benchbed's ``loglik`` metric tags it ``exact`` truthfully; the EBM's log-likelihood
u_θ(x) - log Ẑ is not exact (log Z estimated by importance sampling from the flow, :meth:`ebm_log_partition`)
and is offered as :meth:`ebm_log_likelihood`, outside the capability table; ``anomaly_score`` is the EBM's
-u_θ(x) (its log Z does not depend on x, so the ranking is the normalised EBM's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Interval
from torch import nn

from benchbed.blocks.partition import PartitionEstimate
from benchbed.contracts import Batch, Capability, SetupContext
from benchbed.model import LatentModel
from benchbed_flows.density import FlowDensity, std_normal_log_prob
from benchbed_flows.energy import energy_mlp, log_partition_is
from benchbed_flows.flow import adam


class FCE(LatentModel):
    """Flow contrastive estimation (module docstring).

    Args:
        transforms, hidden, bins, autoregressive, levels: the flow (as in model ``flow``).
        energy_hidden: hidden widths of the energy MLP g.
        lr_ebm: Adam learning rate of g and c.
        lr_flow: Adam learning rate of the flow in the game.
        betas: Adam betas of both optimisers.
        pretrain: fraction of the budget that trains the flow alone by maximum likelihood first.
        lr_pretrain: Adam learning rate of that pretraining.
        partition_samples: flow draws of :meth:`ebm_log_partition` when :meth:`ebm_log_likelihood` needs it.
    """

    capabilities = frozenset({Capability.SAMPLE, Capability.LOG_LIKELIHOOD, Capability.ANOMALY_SCORE})

    def __init__(
        self,
        *,
        transforms: Annotated[int, Gt(0)] = 4,
        hidden: tuple[Annotated[int, Gt(0)], ...] = (64, 64),
        bins: Annotated[int, Ge(2)] = 8,
        autoregressive: bool = False,
        levels: Annotated[int | None, Ge(0)] = None,
        energy_hidden: tuple[Annotated[int, Gt(0)], ...] = (128, 128),
        lr_ebm: Annotated[float, Gt(0)] = 1e-3,
        lr_flow: Annotated[float, Gt(0)] = 2e-4,
        betas: tuple[Annotated[float, Interval(ge=0, lt=1)], Annotated[float, Interval(ge=0, lt=1)]] = (0.5, 0.999),
        pretrain: Annotated[float, Interval(ge=0, lt=1)] = 0.0,
        lr_pretrain: Annotated[float, Gt(0)] = 1e-3,
        partition_samples: Annotated[int, Gt(0)] = 100_000,
    ) -> None:
        super().__init__()
        self.transforms = transforms
        self.hidden = tuple(hidden)
        self.bins = bins
        self.autoregressive = autoregressive
        self.levels = levels
        self.energy_hidden = tuple(energy_hidden)
        self.lr_ebm = lr_ebm
        self.lr_flow = lr_flow
        self.betas = (float(betas[0]), float(betas[1]))
        self.pretrain = pretrain
        self.lr_pretrain = lr_pretrain
        self.partition_samples = partition_samples

    def setup(self, ctx: SetupContext) -> None:
        """Build the flow, the energy g, the log-normaliser c and three Adam optimisers."""
        if self.levels == 1:
            raise ValueError("model 'fce': levels must be 0 (continuous) or >= 2, got 1")
        self.device = ctx.device
        self.pretrain_steps = int(self.pretrain * ctx.budget.steps)
        self.density = FlowDensity(ctx.info, ctx.train, transforms=self.transforms, hidden=self.hidden,
                                   bins=self.bins, autoregressive=self.autoregressive, levels=self.levels,
                                   fast=ctx.engine.fused is not False)
        self.energy = energy_mlp(self.density.dim, self.energy_hidden)
        self.c = nn.Parameter(torch.zeros(()))
        self.to(ctx.device)
        fused = ctx.engine.fused is not False
        self.optimizers = {
            "ebm": adam([*self.energy.parameters(), self.c], lr=self.lr_ebm, betas=self.betas, fused=fused),
            "flow": adam(self.density.parameters(), lr=self.lr_flow, betas=self.betas, fused=fused),
            "pretrain": adam(self.density.parameters(), lr=self.lr_pretrain, fused=fused),
        }

    # -- the EBM in flow coordinates -----------------------------------------------------------------
    def log_unnormalised_y(self, y: torch.Tensor) -> torch.Tensor:
        """g(y) + log N(y; 0, I): the EBM's unnormalised log-density over flow coordinates, [B, D] -> [B]."""
        return self.energy(y).squeeze(-1) + std_normal_log_prob(y)

    def log_unnormalised(self, x: torch.Tensor) -> torch.Tensor:
        """u(x) = g(y) + log N(y) + log |det dy/dx|, data-scale nats without log Z: [B, *D] -> [B]."""
        y, ladj = self.density.space(x.to(self.device))
        return self.log_unnormalised_y(y) + ladj

    # -- training -------------------------------------------------------------------------------------
    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """A flow maximum-likelihood step during ``pretrain``, else one step of the FCE game (module docstring).

        Returns ``value`` (-V, the EBM's classification loss, log 4 at chance), ``accuracy`` of the
        classifier on the two batches, ``c``, and ``flow_nll`` (the flow's mean -log q on the dequantised
        batch, data-scale nats).
        """
        x = self.density.space.dequantize(batch.x.to(self.device))
        y_data, ladj = self.density.space(x)
        # One per step: both uses of the flow share its parameter-derived tensors; first-order splines.
        plan = self.density.plan(first_order=True)
        if step < self.pretrain_steps:
            opt = self.optimizers["pretrain"]
            loss = -(self.density.log_prob_y(y_data, plan) + ladj).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"value": 0.0, "accuracy": 0.5, "c": self.c.item(), "flow_nll": loss.item()}
        y_noise, log_q_noise = self.density.sample_y(y_data.shape[0], plan)
        log_q_data = self.density.log_prob_y(y_data, plan)
        h_data = self.log_unnormalised_y(y_data) + self.c - log_q_data
        h_noise = self.log_unnormalised_y(y_noise) + self.c - log_q_noise
        # -V: softplus(-h) = -log σ(h), softplus(h) = -log(1 - σ(h)).
        loss = F.softplus(-h_data).mean() + F.softplus(h_noise).mean()
        ebm, flow = self.optimizers["ebm"], self.optimizers["flow"]
        ebm.zero_grad(set_to_none=True)
        flow.zero_grad(set_to_none=True)
        loss.backward()
        for p in self.density.parameters():
            if p.grad is not None:
                p.grad.neg_()  # the flow descends V, i.e. ascends the classification loss
        ebm.step()
        flow.step()
        with torch.no_grad():
            acc = 0.5 * ((h_data > 0).float().mean() + (h_noise < 0).float().mean())
        return {"value": loss.item(), "accuracy": acc.item(), "c": self.c.item(),
                "flow_nll": -(log_q_data + ladj).mean().item()}

    # -- EBM normaliser and likelihood ------------------------------------------------------------------
    @torch.no_grad()
    def ebm_log_partition(self, n: int | None = None) -> PartitionEstimate:
        """log Z of exp(u) over the data scale by importance sampling from the flow (not exact).

        Z = ∫ exp(u(x)) dx = ∫ exp(g(y)) N(y; 0, I) dy (the Jacobian cancels), estimated by
        :func:`benchbed_flows.energy.log_partition_is` with y ~ q_α: biased low for log Z.

        Returns:
            ``(log Ẑ, n, effective sample size)``.
        """
        return log_partition_is(self.log_unnormalised_y, self.density.sample_y, n or self.partition_samples)

    @torch.no_grad()
    def ebm_log_likelihood(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """The EBM's log p(x) = u(x) - log Ẑ in data-scale nats, log Ẑ from :meth:`ebm_log_partition`
        (an estimate: biased high where log Ẑ is biased low): [B, *D] -> [B]."""
        return self.log_unnormalised(x) - self.ebm_log_partition(n)[0]

    # -- capabilities ---------------------------------------------------------------------------------
    def sample(self, n: int) -> torch.Tensor:
        """Draws of the flow q_α on the data scale: [n, *D], float32 (images clamped to [0, 1])."""
        return self.density.sample(n).float()

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """The flow's exact log q_α(x) in data-scale nats: [B, *D] -> [B] (see the module docstring)."""
        return self.density.log_prob(x.to(self.device))

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """-u(x), the EBM's negative unnormalised log-density (nats): [B], higher = more anomalous."""
        return -self.log_unnormalised(x)
