"""Concentric rings in 2-D with Gaussian radial noise; label = ring index.

Generative process: pick ring ``k`` uniformly from ``K = n_rings`` rings of radii
``r_k = radius * (k + 1)``, draw ``s ~ N(r_k, std^2)`` and an angle ``theta ~ U[0, 2 pi)``, and set
``x = s (cos theta, sin theta)``.

Density (exact).  A negative ``s`` gives the point ``|s|`` at angle ``theta + pi``, and that angle
is uniform too, so the distance ``rho = |x|`` has the *folded* mixture density

    p_R(rho) = (1/K) sum_k [ N(rho; r_k, std^2) + N(-rho; r_k, std^2) ],   rho > 0,

and, because the angle is uniform and independent of ``rho``, polar coordinates give

    p(x) = p_R(|x|) / (2 pi |x|).

So no truncation is involved: the fold handles ``s < 0`` exactly (its mass is ~1e-23 for the
defaults anyway).  The density has an integrable 1/|x| singularity at the origin; ``log_prob`` clamps
``|x|`` at 1e-30 there to stay finite.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Gt

from benchbed_datasets._base import SyntheticVectorSource, check_float, check_int


class Rings(SyntheticVectorSource):
    """``n_rings`` concentric rings of radii ``radius, 2 radius, ...``, equal weights.

    Args:
        n_train, n_val, n_test: split sizes.
        n_rings: number of rings (= number of classes).
        radius: radius of the innermost ring and the spacing between rings.
        std: standard deviation of the radial noise.
    """

    name = "rings"

    def __init__(
        self,
        *,
        n_train: Annotated[int, Gt(0)] = 4000,
        n_val: Annotated[int, Gt(0)] = 1000,
        n_test: Annotated[int, Gt(0)] = 2000,
        n_rings: Annotated[int, Gt(0)] = 3,
        radius: Annotated[float, Gt(0)] = 1.0,
        std: Annotated[float, Gt(0)] = 0.1,
    ) -> None:
        self._init_sizes(n_train, n_val, n_test)
        self.n_rings = check_int(self.name, "n_rings", n_rings, minimum=1)
        self.radius = check_float(self.name, "radius", radius)
        self.std = check_float(self.name, "std", std)

    @property
    def n_classes(self) -> int:
        return self.n_rings

    def _radii(self, like: torch.Tensor) -> torch.Tensor:
        return self.radius * torch.arange(1, self.n_rings + 1, dtype=like.dtype, device=like.device)

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Points, ring labels, and latents [n, 2] = (signed radius s, angle theta)."""
        k = torch.randint(0, self.n_rings, (n,), generator=gen)
        s = self._radii(torch.empty(0, dtype=torch.float64))[k] + self.std * torch.randn(
            n, generator=gen, dtype=torch.float64
        )
        theta = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
        x = s[:, None] * torch.stack([theta.cos(), theta.sin()], dim=1)
        return x.float(), k, torch.stack([s, theta], dim=1).float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x)`` at ``x`` [B, 2] -> [B] (see the module docstring for the formula)."""
        rho = x.norm(dim=1).clamp_min(1e-30)
        radii = self._radii(x)
        # Both signs of the fold, every ring: [B, 2K] log N(+-rho; r_k, std^2).
        signed = torch.cat([rho[:, None] - radii[None], rho[:, None] + radii[None]], dim=1)
        log_n = -0.5 * (signed / self.std) ** 2 - math.log(self.std) - 0.5 * math.log(2 * math.pi)
        log_p_r = torch.logsumexp(log_n, dim=1) - math.log(self.n_rings)
        return log_p_r - torch.log(2 * math.pi * rho)
