"""Normalizing flow with an exact log-likelihood (a neural spline flow, Durkan et al., NeurIPS 2019).

Model: x = S^{-1}(T(z)), z ~ N(0, I), with T a stack of rational-quadratic spline layers (coupling by
default, see :mod:`benchbed_flows.density`) and S the fixed elementwise map of :mod:`benchbed_flows.space`
(standardisation; dequantisation and logit for images).  The density is exact by the change of variables

    log p(x) = log N(F(S(x)); 0, I) + log |det dF/dy| + log |det dS/dx|,     F = T^{-1},

in nats of the data-scale x (benchbed's [0, 1] scale for images), which is what the ``loglik`` metric's
``exact`` estimator expects of ``log_likelihood`` (``loglik_bpd`` then applies -log p / (D ln 2) + 8).

Training: maximum likelihood with Adam, minibatch mean of -log p(v), v the dequantised batch (for images
a lower bound of the discrete log-likelihood, see :mod:`benchbed_flows.space`); the learning rate follows a
cosine decay over the budget, a function of the step so a resumed run repeats it.

Why zuko: it is maintained, small, pure PyTorch, and its flows are ordinary ``nn.Module`` objects whose
state dicts checkpoint like any other network; normflows (the other common library) is larger, less
actively maintained, and builds its models around its own base-distribution objects.  zuko provides the
spline transforms and the coupling masks only; the data-scale map, dequantisation and training are here.

No dynamics: the sampler axis does not apply (``uses_sampler=False``).

Engine option ``fused`` (default on): the coupling layers are evaluated block-wise
(:mod:`benchbed_flows.coupling`: the same values, gradients equal to rounding), the training step's
splines with hand-written derivatives, and Adam is torch's fused implementation (:func:`adam`);
``fused=False`` evaluates the flow with zuko's own objects and uses the default Adam.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt

from benchbed.contracts import Batch, Capability, SetupContext
from benchbed.model import LatentModel
from benchbed_flows.density import FlowDensity


def adam(params: Iterable[torch.nn.Parameter], *, fused: bool, **kwargs: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(params, **kwargs)``; ``fused`` (the engine option): torch's single-kernel
    implementation, the same update as the default one up to floating-point rounding, at less than half
    its cost on CPU (a flow's conditioners hold ~10^5 weights per layer)."""
    return torch.optim.Adam(params, fused=True if fused else None, **kwargs)


def cosine_lr(lr: float, step: int, total: int, floor: float = 0.05) -> float:
    """Cosine decay from ``lr`` to ``floor * lr`` over ``total`` steps (a function of the step only)."""
    frac = min(max(step / max(total, 1), 0.0), 1.0)
    return lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * frac)))


class Flow(LatentModel):
    """Neural spline flow trained by maximum likelihood (module docstring).

    Args:
        transforms: spline layers.
        hidden: widths of each layer's conditioner MLP.
        bins: spline bins per coordinate.
        autoregressive: fully autoregressive layers (slower sampling, D passes) instead of coupling.
        levels: image grid levels for dequantisation; ``None`` detects them from the training split
            (17 for the digits), 0 treats the images as continuous.
        lr: Adam learning rate (start of the cosine decay).
        decay: use the cosine decay; ``False`` keeps ``lr`` constant.
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
        lr: Annotated[float, Gt(0)] = 1e-3,
        decay: bool = True,
    ) -> None:
        super().__init__()
        self.transforms = transforms
        self.hidden = tuple(hidden)
        self.bins = bins
        self.autoregressive = autoregressive
        self.levels = levels
        self.lr = lr
        self.decay = decay

    def setup(self, ctx: SetupContext) -> None:
        """Build the flow and its standardisation for ``ctx.info`` and the Adam optimiser."""
        if self.levels == 1:
            raise ValueError("model 'flow': levels must be 0 (continuous) or >= 2, got 1")
        self.device = ctx.device
        self.total_steps = ctx.budget.steps
        self.density = FlowDensity(ctx.info, ctx.train, transforms=self.transforms, hidden=self.hidden,
                                   bins=self.bins, autoregressive=self.autoregressive, levels=self.levels,
                                   fast=ctx.engine.fused is not False)
        self.to(ctx.device)
        self.optimizers = {"flow": adam(self.density.parameters(), lr=self.lr, fused=ctx.engine.fused is not False)}

    def resolved_settings(self) -> dict[str, float]:
        """The image grid detected from the data (0 for vectors or continuous images)."""
        return {"levels": float(self.density.space.levels)}

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """One Adam step on the mean negative log-likelihood of the dequantised batch (nats per example)."""
        opt = self.optimizers["flow"]
        if self.decay:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(self.lr, step, self.total_steps)
        x = self.density.space.dequantize(batch.x.to(self.device))
        loss = -self.density.log_prob(x, self.density.plan(first_order=True)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"nll": loss.item()}

    # -- capabilities ---------------------------------------------------------------------------------
    def sample(self, n: int) -> torch.Tensor:
        """x = S^{-1}(T(z)), z ~ N(0, I): [n, *D], float32 on the data scale (images clamped to [0, 1])."""
        return self.density.sample(n).float()

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in data-scale nats: [B, *D] -> [B] (images: the density at the bin centre x)."""
        return self.density.log_prob(x.to(self.device))

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) (nats): [B], higher = more anomalous."""
        return -self.log_likelihood(x)
