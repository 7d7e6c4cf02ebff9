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
"""

from __future__ import annotations

import math

import torch
import zuko
from torch import nn

from benchbed.contracts import DatasetInfo, Split
from benchbed_flows.space import FlowSpace, grid_levels

_LOG_2PI = math.log(2.0 * math.pi)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension: [B, D] -> [B]."""
    return -0.5 * (z.pow(2).sum(dim=-1) + z.shape[-1] * _LOG_2PI)


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

    # -- coordinates y ------------------------------------------------------------------------------
    def log_prob_y(self, y: torch.Tensor) -> torch.Tensor:
        """log q_Y(y): [B, D] -> [B] (nats in flow coordinates)."""
        return self.flow().log_prob(y)

    def sample_y(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws y = T(z), z ~ N(0, I), and log q_Y(y): ([n, D], [n]); differentiable in the flow."""
        return self.flow().rsample_and_log_prob((n,))

    def to_latent(self, y: torch.Tensor) -> torch.Tensor:
        """z = F(y): [B, D] -> [B, D]."""
        return self.flow().transform(y)

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """y = T(z) = F^{-1}(z): [B, D] -> [B, D]."""
        return self.flow().transform.inv(z)

    # -- data scale -----------------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q_X(x) in data-scale nats, exact: [B, *D] -> [B]."""
        y, ladj = self.space(x)
        return self.log_prob_y(y) + ladj

    def sample(self, n: int) -> torch.Tensor:
        """n draws on the data scale (images clamped to [0, 1]): [n, *D]."""
        return self.space.to_data(self.sample_y(n)[0])
