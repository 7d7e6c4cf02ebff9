"""A zuko neural spline flow wrapped as a density over benchbed's data scale (shared by the three models).

The flow is a bijection F: y -> z between the flow coordinates y of :class:`~benchbed_flows.space.FlowSpace`
and a standard Gaussian latent z, with the density (change of variables, Rezende & Mohamed 2015, eq. 1;
Durkan et al. 2019 for the rational-quadratic spline transforms)

    log q_X(x) = log N(F(y); 0, I) + log |det dF/dy| + log |det dy/dx|,     y = y(x).

Its inverse T = F^{-1}: z -> y is the generator: a draw is T(z), z ~ N(0, I).  ``autoregressive=False``
(the default) builds coupling layers (zuko's ``passes=2``): both directions cost one network pass per
layer, which sampling-heavy models need (FCE draws a batch of flow samples every step; the flow EBM runs
Langevin chains through T).  ``autoregressive=True`` builds a fully autoregressive NSF (MAF-style): the
density is one pass, a draw takes D sequential passes per layer.

Evaluation: coupling flows are computed by :class:`benchbed_flows.coupling.CouplingNSF` from the zuko
modules' parameters (``fast=True``, the default): the same function with about half the operations
(zuko itself runs two conditioner passes per layer to invert and a third for the inverse's log-det).
``fast=False`` (engine option ``fused=False``) calls zuko's own distribution objects; the two agree to
floating-point rounding.  Every method takes an optional :class:`~benchbed_flows.coupling.FlowPlan`
(:meth:`FlowDensity.plan`): a caller that evaluates the flow several times with the same parameters (one
training step, a whole chain run) builds it once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import zuko
from torch import nn

from benchbed.contracts import DatasetInfo, Split
from benchbed_flows.coupling import CouplingNSF, FlowPlan
from benchbed_flows.space import FlowSpace, grid_levels

_LOG_2PI = math.log(2.0 * math.pi)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension: [B, D] -> [B]."""
    return -0.5 * (z.pow(2).sum(dim=-1) + z.shape[-1] * _LOG_2PI)


def _coupling(flow: zuko.flows.NSF) -> CouplingNSF | None:
    """The block-wise evaluator of a coupling flow; ``None`` for a flow it does not cover (one feature:
    zuko then builds element-wise layers), which keeps zuko's own evaluation."""
    try:
        return CouplingNSF(flow)
    except ValueError:
        return None


class FlowDensity(nn.Module):
    """q_X(x): a zuko NSF on the coordinates of a :class:`FlowSpace` (module docstring).

    Args:
        info: the data set's metadata (shape, kind).
        train: the training split: its statistics fix the standardisation, its values the image grid.
        transforms: spline layers.
        hidden: widths of each layer's conditioner MLP.
        bins: spline bins K.
        autoregressive: fully autoregressive layers instead of coupling layers.
        levels: image grid levels L; ``None`` detects them from ``train`` (:func:`grid_levels`).
        fast: evaluate coupling layers with :class:`~benchbed_flows.coupling.CouplingNSF` (same values up
            to rounding, fewer operations); ``False`` uses zuko's distribution objects.  Autoregressive
            flows always use zuko's.
    """

    def __init__(
        self,
        info: DatasetInfo,
        train: Split,
        *,
        transforms: int,
        hidden: tuple[int, ...],
        bins: int,
        autoregressive: bool,
        levels: int | None = None,
        fast: bool = True,
    ) -> None:
        super().__init__()
        image = info.kind == "image"
        if levels is None:
            levels = grid_levels(train.x) if image else 0
        self.space = FlowSpace(tuple(info.shape), image=image, levels=levels)
        self.space.fit_statistics(train.x)
        self.dim = self.space.dim
        self.flow = zuko.flows.NSF(
            self.dim,
            transforms=transforms,
            bins=bins,
            hidden_features=tuple(hidden),
            passes=None if autoregressive else 2,
            # Alternate the coupling halves: with ascending/descending orders every coordinate is
            # transformed conditioned on the other half in consecutive layers.
            randperm=False,
        )
        # Not a submodule: it only refers to the flow's modules (the state dict is zuko's alone).
        self.coupling = _coupling(self.flow) if fast and not autoregressive else None

    def plan(self, *, first_order: bool = False) -> FlowPlan | None:
        """The flow's parameter-derived tensors for the methods' ``plan`` argument (``None`` on zuko's path).

        Built in grad mode it is part of the graph (one per training step); under ``torch.no_grad()`` it
        is a detached snapshot, valid until the next parameter update.  ``first_order``: the evaluations
        with this plan record each spline as one autograd node with hand-written derivatives (far fewer
        operations; not differentiable twice): for a training step's ``backward()``.
        """
        return self.coupling.plan(first_order=first_order) if self.coupling is not None else None

    def _plan(self, plan: FlowPlan | None) -> FlowPlan:
        assert self.coupling is not None
        return plan if plan is not None else self.coupling.plan()

    # -- coordinates y ------------------------------------------------------------------------------
    def log_prob_y(self, y: torch.Tensor, plan: FlowPlan | None = None) -> torch.Tensor:
        """log q_Y(y): [B, D] -> [B] (nats in flow coordinates)."""
        if self.coupling is None:
            return self.flow().log_prob(y)
        return self.coupling.log_prob(y, self._plan(plan))

    def sample_y(self, n: int, plan: FlowPlan | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws y = T(z), z ~ N(0, I), and log q_Y(y): ([n, D], [n]); differentiable in the flow."""
        if self.coupling is None:
            return self.flow().rsample_and_log_prob((n,))
        return self.coupling.rsample_and_log_prob(n, self._plan(plan))

    def to_latent(self, y: torch.Tensor, plan: FlowPlan | None = None) -> torch.Tensor:
        """z = F(y): [B, D] -> [B, D]."""
        if self.coupling is None:
            return self.flow().transform(y)
        return self.coupling.forward(y, self._plan(plan))[0]

    def from_latent(self, z: torch.Tensor, plan: FlowPlan | None = None) -> torch.Tensor:
        """y = T(z) = F^{-1}(z): [B, D] -> [B, D]."""
        if self.coupling is None:
            return self.flow().transform.inv(z)
        return self.coupling.inverse(z, self._plan(plan))

    def from_latent_and_vjp(
        self, z: torch.Tensor, plan: FlowPlan | None = None
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """``(y, vjp)``: y = T(z) [B, D] (detached) and ``vjp(v) = v^T dT/dz`` [B, D] with the flow's
        parameters held fixed (no parameter gradients; ``vjp`` may be called once).

        Hand-written on the block-wise path (:meth:`CouplingNSF.inverse_and_vjp`: no autograd tape), one
        autograd pass otherwise.
        """
        if self.coupling is not None and self.coupling.has_inverse_vjp:
            return self.coupling.inverse_and_vjp(z, self._plan(plan))
        with torch.inference_mode(False), torch.enable_grad():
            leaf = z.detach().clone().requires_grad_(True)
            y = self.from_latent(leaf, plan)

        def vjp(v: torch.Tensor) -> torch.Tensor:
            (g,) = torch.autograd.grad(y, leaf, grad_outputs=v)
            return g

        return y.detach(), vjp

    # -- data scale -----------------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, plan: FlowPlan | None = None) -> torch.Tensor:
        """log q_X(x) in data-scale nats, exact: [B, *D] -> [B]."""
        y, ladj = self.space(x)
        return self.log_prob_y(y, plan) + ladj

    def sample(self, n: int, plan: FlowPlan | None = None) -> torch.Tensor:
        """n draws on the data scale (images clamped to [0, 1]): [n, *D]."""
        return self.space.to_data(self.sample_y(n, plan)[0])
