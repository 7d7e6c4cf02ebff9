"""The 2-D Swiss roll: a noisy spiral; label = which of ``n_segments`` stretches of the spiral.

Generative process (scikit-learn's ``make_swiss_roll``, the (x, z) plane, then scaled):
``t ~ U[t0, t1]`` with ``t0 = 1.5 pi``, ``t1 = 4.5 pi``; ``m(t) = scale * (t cos t, t sin t)``;
``x = m(t) + std * eps`` with ``eps ~ N(0, I_2)``.  The label is ``floor(n_segments (t - t0)/(t1 - t0))``,
i.e. equal-probability stretches of the roll, so ``hold_out`` removes one stretch.

Density.  There is no closed form:

    p(x) = 1/(t1 - t0) * integral_{t0}^{t1} N(x; m(t), std^2 I) dt.

``log_prob`` evaluates this one-dimensional integral numerically with composite Gauss-Legendre
quadrature (8 nodes per panel) in float64, with panels short enough that the curve moves at most
``std`` along one panel, so the integrand is a smooth bump resolved by 8 nodes inside a panel.  The quadrature error
is far below float32 precision (the test checks the density integrates to 1 on a grid); it is a
numerical value of the exact density, not a Monte Carlo estimate.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import torch
from annotated_types import Gt

from benchbed_datasets._base import SyntheticVectorSource, check_float, check_int

T0, T1 = 1.5 * math.pi, 4.5 * math.pi
_ORDER = 8  # Gauss-Legendre nodes per panel
_CHUNK = 1024  # points per block when evaluating the density


def gauss_legendre(a: float, b: float, n_panels: int, order: int = _ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of composite Gauss-Legendre quadrature on ``[a, b]`` (``n_panels * order`` each)."""
    base_x, base_w = np.polynomial.legendre.leggauss(order)  # on [-1, 1]
    edges = np.linspace(a, b, n_panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    mid = 0.5 * (edges[:-1] + edges[1:])[:, None]
    return (mid + half * base_x[None]).ravel(), (half * base_w[None]).ravel()


class SwissRoll(SyntheticVectorSource):
    """Noisy 2-D Swiss roll.

    Args:
        n_train, n_val, n_test: split sizes.
        scale: multiplies the spiral ``(t cos t, t sin t)`` (0.2 puts the data in about [-2.8, 2.8]^2).
        std: standard deviation of the isotropic Gaussian noise around the spiral.
        n_segments: number of equal-probability stretches of the spiral used as labels.
    """

    name = "swissroll"

    def __init__(
        self,
        *,
        n_train: Annotated[int, Gt(0)] = 4000,
        n_val: Annotated[int, Gt(0)] = 1000,
        n_test: Annotated[int, Gt(0)] = 2000,
        scale: Annotated[float, Gt(0)] = 0.2,
        std: Annotated[float, Gt(0)] = 0.2,
        n_segments: Annotated[int, Gt(0)] = 3,
    ) -> None:
        self._init_sizes(n_train, n_val, n_test)
        self.scale = check_float(self.name, "scale", scale)
        self.std = check_float(self.name, "std", std)
        self.n_segments = check_int(self.name, "n_segments", n_segments, minimum=1)

    @property
    def n_classes(self) -> int:
        return self.n_segments

    def curve(self, t: torch.Tensor) -> torch.Tensor:
        """The noiseless spiral ``m(t)`` [..., 2] at parameters ``t`` [...]."""
        return self.scale * torch.stack([t * t.cos(), t * t.sin()], dim=-1)

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Points, segment labels, and latents [n, 1] = the spiral parameter t."""
        u = torch.rand(n, generator=gen, dtype=torch.float64)
        t = T0 + (T1 - T0) * u
        x = self.curve(t) + self.std * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        label = (u * self.n_segments).long().clamp_max(self.n_segments - 1)
        return x.float(), label, t[:, None].float()

    def _quadrature(self) -> tuple[torch.Tensor, torch.Tensor]:
        # The curve's speed |m'(t)| = scale * sqrt(1 + t^2) is largest at t1; bound the arc length
        # travelled per panel by std.
        max_speed = self.scale * math.sqrt(1 + T1**2)
        n_panels = max(16, math.ceil((T1 - T0) * max_speed / self.std))
        nodes, weights = gauss_legendre(T0, T1, n_panels)
        return torch.from_numpy(nodes), torch.from_numpy(np.log(weights / (T1 - T0)))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` at ``x`` [B, 2] -> [B] by quadrature over the latent ``t`` (module docstring)."""
        nodes, log_w = self._quadrature()
        means = self.curve(nodes)  # [Q, 2] float64
        # log w_j + log N(x; m(t_j), std^2 I) with |x - m|^2 = |x|^2 + |m|^2 - 2 x.m (one matmul).
        const = log_w - 0.5 * (means**2).sum(1) / self.std**2 - math.log(2 * math.pi * self.std**2)
        x64 = x.detach().to("cpu", torch.float64)
        out = [
            torch.logsumexp(
                torch.addmm(const[None], block, means.T, alpha=1 / self.std**2), dim=1
            ) - 0.5 * (block**2).sum(1) / self.std**2
            for block in x64.split(_CHUNK)
        ]
        result = torch.cat(out) if out else x64.new_zeros(0)
        return result.to(device=x.device, dtype=x.dtype)
