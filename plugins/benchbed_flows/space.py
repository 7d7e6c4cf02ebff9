"""The fixed, invertible map between benchbed's data scale and a flow's coordinates, with its Jacobian.

Every density this package reports is a density of the **data-scale** ``x`` (benchbed's [0, 1] scale for
images, the raw coordinates for vectors), in nats, evaluated at ``x`` itself.  The flows work on
unconstrained coordinates ``y`` [B, D] (D = prod(shape), images flattened), so by the change of
variables (Rezende & Mohamed 2015, eq. 1)

    log p_X(x) = log p_Y(y(x)) + log |det dy/dx|,

and the map y(x) below is elementwise, so ``log |det dy/dx|`` is a sum over the D coordinates.

Vectors: y = (x - m) / s, per-coordinate mean m and standard deviation s of the training split
(the spline transforms of zuko are the identity outside [-5, 5], so the data must sit inside).

Images quantised on a grid of L levels {0, 1/(L-1), ..., 1} (L = 17 for the 8x8 digits, 256 for 8-bit
images) are **dequantised** for training (Theis, van den Oord & Bethge 2016; Uria et al. 2013):
v = x + delta (u - 1/2), u ~ U(0, 1)^D, delta = 1/(L-1), so each grid value is the *centre* of its bin
and v lives in [-delta/2, 1 + delta/2]^D.  Maximising E_u[log p_X(v)] maximises a lower bound of
log P(bin of x) - D log delta (Jensen), the usual dequantisation bound.  The density is then squeezed
into (0, 1) and unbounded by a logit (Dinh et al. 2017, RealNVP §4.1):

    w = (v + delta/2) / (1 + delta),   s = alpha + (1 - 2 alpha) w,   t = logit(s),   y = (t - m) / s_t

with log |dy/dv| = -log(1 + delta) + log(1 - 2 alpha) - log s - log(1 - s) - log s_t per coordinate.
``log_likelihood(x)`` of a model is p_X at the grid point x itself (the centre of its bin), a density over
the data scale like every other model's in benchbed; log P(bin) ~ log p_X(x) + D log delta.  Images that
are not on a grid (L = 0) skip the noise and use delta = 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: A grid must have at most this many levels to be treated as quantised (8-bit images have 256).
MAX_LEVELS = 256


def grid_levels(x: torch.Tensor, *, max_values: int = 200_000) -> int:
    """The number of levels L of the grid {k / (L - 1)} that the values of ``x`` lie on, or 0 if none.

    Args:
        x: training data in [0, 1], any shape; at most ``max_values`` of its values are inspected.

    Returns:
        L >= 2 when every inspected value is within 1e-4 of the grid spacing of a multiple of
        1 / (L - 1) with L <= :data:`MAX_LEVELS`; 0 otherwise (continuous data).
    """
    values = torch.unique(x.detach().flatten()[:max_values].double().cpu())
    if values.numel() < 2 or values.numel() > MAX_LEVELS:
        return 0
    spacing = float((values[1:] - values[:-1]).min())
    steps = round(1.0 / spacing)
    if not 1 <= steps < MAX_LEVELS:
        return 0
    k = values * steps
    if (k - k.round()).abs().max() > 1e-4:
        return 0
    return steps + 1


class FlowSpace(nn.Module):
    """Elementwise bijection data scale -> flow coordinates, with its log-Jacobian (module docstring).

    Args:
        shape: shape of one example, ``(C, H, W)`` or ``(d,)``.
        image: apply the dequantisation and logit of images.
        levels: grid levels L of the images (0: continuous; ignored for vectors).
        alpha: logit squeeze, keeps s away from 0 and 1.

    The standardisation buffers ``shift`` and ``scale`` [D] are set by :meth:`fit_statistics` and saved
    in the model's checkpoint.
    """

    def __init__(self, shape: tuple[int, ...], *, image: bool, levels: int, alpha: float = 0.05) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.dim = math.prod(self.shape)
        self.image = image
        self.levels = levels if image else 0
        self.delta = 1.0 / (self.levels - 1) if self.levels >= 2 else 0.0
        self.alpha = alpha
        self.register_buffer("shift", torch.zeros(self.dim))
        self.register_buffer("scale", torch.ones(self.dim))

    def dequantize(self, x: torch.Tensor) -> torch.Tensor:
        """x + delta (u - 1/2), u ~ U(0, 1): [B, *D] -> [B, *D] (the identity for vectors and continuous images)."""
        if self.delta == 0.0:
            return x
        return x + self.delta * (torch.rand_like(x) - 0.5)

    def _unbounded(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flattened data-scale v [B, D] -> (t [B, D] before standardisation, log |dt/dv| [B])."""
        if not self.image:
            return v, torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
        w = (v + 0.5 * self.delta) / (1.0 + self.delta)
        s = self.alpha + (1.0 - 2.0 * self.alpha) * w
        t = torch.log(s) - torch.log1p(-s)
        per = math.log(1.0 - 2.0 * self.alpha) - math.log(1.0 + self.delta) - torch.log(s) - torch.log1p(-s)
        return t, per.sum(dim=1)

    @torch.no_grad()
    def fit_statistics(self, x: torch.Tensor) -> None:
        """Set ``shift``/``scale`` to the per-coordinate mean and std of the (dequantised) training data x [N, *D]."""
        t, _ = self._unbounded(self.dequantize(x.to(self.shift.device)).flatten(1))
        self.shift.copy_(t.mean(dim=0))
        # A coordinate that never varies (no dequantisation noise) would give s = 0.
        self.scale.copy_(t.std(dim=0).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data-scale x [B, *D] -> (y [B, D], log |det dy/dx| [B])."""
        t, ladj = self._unbounded(x.flatten(1))
        y = (t - self.shift) / self.scale
        return y, ladj - self.scale.log().sum()

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Flow coordinates y [B, D] -> data-scale x [B, *D] (not clamped: images lie in [-delta/2, 1 + delta/2])."""
        t = y * self.scale + self.shift
        if self.image:
            s = torch.sigmoid(t)
            w = (s - self.alpha) / (1.0 - 2.0 * self.alpha)
            t = w * (1.0 + self.delta) - 0.5 * self.delta
        return t.reshape(y.shape[0], *self.shape)

    def to_data(self, y: torch.Tensor) -> torch.Tensor:
        """:meth:`inverse`, images clamped to [0, 1]: what ``sample`` returns (float32, data scale)."""
        x = self.inverse(y)
        return x.clamp(0.0, 1.0) if self.image else x
