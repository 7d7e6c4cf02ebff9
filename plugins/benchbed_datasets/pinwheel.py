"""The pinwheel: Gaussian blobs bent into spiral arms (Johnson et al., NeurIPS 2016, SVAE); label = arm.

Generative process for arm ``k`` of ``K`` (equal weights): ``a ~ N(1, radial_std^2)``,
``b ~ N(0, tangential_std^2)``, ``f = (a, b)``; the arm is turned by ``phi(a) = 2 pi k / K + rate * exp(a)``
(farther points turn more), and ``x = scale * R(phi(a)) f`` with ``R`` the counter-clockwise rotation.
The defaults are the SVAE paper's (``0.3, 0.05, 5 arms, rate 0.25``); the sign convention of the
rotation is ours.

Density (exact, evaluated numerically).  The map ``f -> x`` has Jacobian determinant
``scale^2 (1 - rate * exp(a) * b)``, so by change of variables

    p(x) = (1/K) sum_k sum_{f in F_k(x)} N(a; 1, radial_std^2) N(b; 0, tangential_std^2)
                                          / (scale^2 |1 - rate e^a b|),

summed over the preimages ``F_k(x)``.  Writing ``f = rho (cos alpha, sin alpha)`` with
``rho = |x| / scale``, the preimages are the roots (mod 2 pi) of
``h(alpha) = alpha + rate * exp(rho cos alpha) - (angle(x) - 2 pi k / K)``; note ``h' = 1 - rate e^a b``.
``h`` winds exactly once, so there is always at least one root.  ``log_prob`` brackets the roots on
a grid of ``_GRID`` angles and refines each by bisection in float64.  Two roots closer together than
one grid step (only next to a fold, ``rate e^a b`` near 1; P(rate e^a b >= 1) ~ 5e-15 under the
defaults) can be missed there; everywhere else the value is exact to float64 bisection precision.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Gt

from benchbed_datasets._base import SyntheticVectorSource, check_float, check_int

_GRID = 256  # bracketing grid over alpha in [-pi, pi]
_BISECT = 45  # bisection steps: bracket width 2 pi / 256 / 2^45 ~ 1e-15
_CHUNK = 512  # points per block when evaluating the density
_LOG_2PI = math.log(2 * math.pi)


class Pinwheel(SyntheticVectorSource):
    """Pinwheel with ``n_arms`` spiral arms.

    Args:
        n_train, n_val, n_test: split sizes.
        n_arms: number of arms (= number of classes).
        radial_std: standard deviation of ``a`` (along the arm).
        tangential_std: standard deviation of ``b`` (across the arm).
        rate: how fast an arm turns with ``exp(a)``.
        scale: overall scale of the picture.
    """

    name = "pinwheel"

    def __init__(
        self,
        *,
        n_train: Annotated[int, Gt(0)] = 4000,
        n_val: Annotated[int, Gt(0)] = 1000,
        n_test: Annotated[int, Gt(0)] = 2000,
        n_arms: Annotated[int, Gt(0)] = 5,
        radial_std: Annotated[float, Gt(0)] = 0.3,
        tangential_std: Annotated[float, Gt(0)] = 0.05,
        rate: float = 0.25,
        scale: Annotated[float, Gt(0)] = 2.0,
    ) -> None:
        self._init_sizes(n_train, n_val, n_test)
        self.n_arms = check_int(self.name, "n_arms", n_arms, minimum=1)
        self.radial_std = check_float(self.name, "radial_std", radial_std)
        self.tangential_std = check_float(self.name, "tangential_std", tangential_std)
        self.rate = check_float(self.name, "rate", rate, positive=False)
        self.scale = check_float(self.name, "scale", scale)

    @property
    def n_classes(self) -> int:
        return self.n_arms

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Points, arm labels, and latents [n, 2] = f = (a, b) before bending."""
        k = torch.randint(0, self.n_arms, (n,), generator=gen)
        eps = torch.randn(n, 2, generator=gen, dtype=torch.float64)
        a = 1.0 + self.radial_std * eps[:, 0]
        b = self.tangential_std * eps[:, 1]
        phi = 2 * math.pi * k.double() / self.n_arms + self.rate * a.exp()
        c, s = phi.cos(), phi.sin()
        x = self.scale * torch.stack([c * a - s * b, s * a + c * b], dim=1)
        return x.float(), k, torch.stack([a, b], dim=1).float()

    def _h(self, alpha: torch.Tensor, rho: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """``h(alpha)`` of the module docstring; ``rho``/``psi`` broadcast against ``alpha``."""
        return alpha + self.rate * torch.exp(rho * alpha.cos()) - psi

    def _block_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p`` for one block ``x`` [B, 2] float64 -> [B]."""
        n, k_arms = x.shape[0], self.n_arms
        rho = (x.norm(dim=1) / self.scale).repeat_interleave(k_arms)  # [M], M = B * K, point-major
        offsets = 2 * math.pi * torch.arange(k_arms, dtype=x.dtype) / k_arms
        psi = (torch.atan2(x[:, 1], x[:, 0])[:, None] - offsets[None]).reshape(-1)
        grid = torch.linspace(-math.pi, math.pi, _GRID + 1, dtype=x.dtype)
        level = torch.floor(self._h(grid[None], rho[:, None], psi[:, None]) / (2 * math.pi))  # [M, G+1]
        # A root lies in a grid interval whose ends sit on different 2 pi levels; it is a root of
        # h - 2 pi m with m the larger of the two levels (the one crossed either way).
        row, col = torch.nonzero(level[:, 1:] != level[:, :-1], as_tuple=True)
        target = 2 * math.pi * torch.maximum(level[row, col], level[row, col + 1])
        lo, hi = grid[col], grid[col + 1]
        r_row, p_row = rho[row], psi[row]
        f_lo = self._h(lo, r_row, p_row) - target
        for _ in range(_BISECT):
            mid = 0.5 * (lo + hi)
            f_mid = self._h(mid, r_row, p_row) - target
            same = torch.sign(f_mid) == torch.sign(f_lo)
            lo, f_lo = torch.where(same, mid, lo), torch.where(same, f_mid, f_lo)
            hi = torch.where(same, hi, mid)
        alpha = 0.5 * (lo + hi)
        a, b = r_row * alpha.cos(), r_row * alpha.sin()
        log_pf = (
            -0.5 * ((a - 1.0) / self.radial_std) ** 2
            - 0.5 * (b / self.tangential_std) ** 2
            - math.log(self.radial_std * self.tangential_std)
            - _LOG_2PI
        )
        log_det = 2 * math.log(self.scale) + torch.log(torch.abs(1 - self.rate * a.exp() * b))
        contrib = log_pf - log_det - math.log(k_arms)
        point = torch.div(row, k_arms, rounding_mode="floor")
        return _scatter_logsumexp(contrib, point, n)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` at ``x`` [B, 2] -> [B] (nats) by root finding (module docstring)."""
        x64 = x.detach().to("cpu", torch.float64)
        out = [self._block_log_prob(block) for block in x64.split(_CHUNK)]
        result = torch.cat(out) if out else x64.new_zeros(0)
        return result.to(device=x.device, dtype=x.dtype)


def _scatter_logsumexp(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """``out[i] = logsumexp(values[index == i])`` for ``i < n`` (``-inf`` where empty)."""
    peak = torch.full((n,), -math.inf, dtype=values.dtype).scatter_reduce(0, index, values, reduce="amax")
    safe = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.zeros(n, dtype=values.dtype).index_add_(0, index, torch.exp(values - safe[index]))
    return torch.log(total) + safe
