"""The joint latent-space EBM prior of a multi-layer generator (Cui, Wu, Han, CVPR 2023; ``docs/models.md#hlebm``).

Layers are numbered bottom-up: ``z_1`` feeds the image generator, ``z_L`` is the top.  The prior is

    p(z_1..z_L) ∝ exp( sum_l f_l(z_l) ) * prod_{l<L} N(z_l; mu_l(z_{l+1}), sigma_l(z_{l+1})^2) * N(z_L; 0, I)

i.e. a Gaussian top-down hierarchy (the *base*) tilted by layer-wise energy terms ``f_l`` (the
networks output the negative energy ``f``, as in the official ``_netEzi``).  One log Z normalises
the whole product; it depends on the energies *and* on the conditionals, which is why both are
learned contrastively (positive = posterior samples, negative = prior samples).

Change of variables: with ``z_l = mu_l(z_{l+1}) + sigma_l(z_{l+1}) eps_l`` (``eps_L = z_L``) the base
becomes ``u = cat(eps_1..eps_L) ~ N(0, I)`` and the prior in ``u`` is ``exp(sum_l f_l(z_l(u))) N(u; 0, I)``
(the Jacobian ``prod sigma`` cancels the conditionals' normalisers).  Both parameterisations have the
same distribution over z; the ``u`` form stays well conditioned when a learned sigma_l gets small.

A joint latent code is one flat tensor ``z = cat(z_1, ..., z_L)`` of shape ``[..., sum(dims)]``, so
any benchbed sampler can run joint dynamics over all layers at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from benchbed.blocks.gaussian import std_normal_log_prob
from benchbed.blocks.nets import mlp
from benchbed_ebm.gaussian import ConditionalGaussian


def _pick(values: Sequence[int], i: int) -> int:
    """``values[i]``, reusing the last entry for layers past the end of the list."""
    return values[min(i, len(values) - 1)]


class JointLatentPrior(nn.Module):
    """Layer-wise EBM terms over a top-down Gaussian hierarchy.

    Args:
        dims: latent sizes ``(d_1, ..., d_L)``, bottom first; ``L >= 2``.
        cond_width, cond_layers: the MLP of each p(z_l | z_{l+1}) (official: 200 units, 4 layers).
        ebm_widths, ebm_layers: per-layer MLP of f_l (official: f_1 3 x 200, f_2 2 x 100); the last
            entry is reused for higher layers.
        cond_skip: give each mu_l a linear path from z_{l+1} (``ConditionalGaussian(skip=True)``).
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        cond_width: int,
        cond_layers: int,
        ebm_widths: Sequence[int],
        ebm_layers: Sequence[int],
        cond_skip: bool = False,
    ) -> None:
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"JointLatentPrior: needs two or more latent layers, got dims={tuple(dims)}")
        self.dims = tuple(int(d) for d in dims)
        self.conds = nn.ModuleList(
            ConditionalGaussian(self.dims[l + 1], self.dims[l], width=cond_width, n_layers=cond_layers,
                                skip=cond_skip)
            for l in range(len(self.dims) - 1)
        )
        self.energies = nn.ModuleList(
            mlp([d] + [_pick(ebm_widths, l)] * _pick(ebm_layers, l) + [1]) for l, d in enumerate(self.dims)
        )

    @property
    def n_layers(self) -> int:
        return len(self.dims)

    @property
    def dim(self) -> int:
        """Size of the flat joint code."""
        return sum(self.dims)

    def split(self, z: torch.Tensor) -> list[torch.Tensor]:
        """``[..., sum(dims)] -> [z_1 [..., d_1], ..., z_L [..., d_L]]``."""
        return list(torch.split(z, self.dims, dim=-1))

    def join(self, zs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(zs), dim=-1)

    def energy_terms(self, z: torch.Tensor) -> list[torch.Tensor]:
        """``[f_1(z_1), ..., f_L(z_L)]``, each ``[...]`` (negative energies: higher = more likely)."""
        return [f(zl).squeeze(-1) for f, zl in zip(self.energies, self.split(z), strict=True)]

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """``sum_l f_l(z_l)``: ``[..., Z] -> [...]``."""
        return torch.stack(self.energy_terms(z), dim=0).sum(dim=0)

    def cond_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``sum_{l<L} log p(z_l | z_{l+1})``: the learned part of the base, ``[..., Z] -> [...]``."""
        zs = self.split(z)
        return torch.stack([c.log_prob(zs[l], zs[l + 1]) for l, c in enumerate(self.conds)], dim=0).sum(dim=0)

    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised log density of the Gaussian hierarchy (the prior without the f_l): ``[...]``."""
        return self.cond_log_prob(z) + std_normal_log_prob(self.split(z)[-1])

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised log prior ``sum_l f_l + log base``; log Z left out.  ``[..., Z] -> [...]``."""
        return self.energy(z) + self.base_log_prob(z)

    def residuals(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Standardised residuals ``eps_l = (z_l - mu_l(z_{l+1})) / sigma_l(z_{l+1})``; ``eps_L = z_L``.

        ``from_residuals(residuals(z)) == z``: the residuals are the generator's independent noise.
        """
        zs = self.split(z)
        eps = []
        for l, c in enumerate(self.conds):
            mu, sigma = c(zs[l + 1])
            eps.append((zs[l] - mu) / sigma)
        eps.append(zs[-1])
        return eps

    def from_residuals(self, eps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Top-down ancestral pass: ``z_L = eps_L``, ``z_l = mu_l(z_{l+1}) + sigma_l(z_{l+1}) eps_l``."""
        zs = [eps[-1]]
        for l in range(self.n_layers - 2, -1, -1):
            mu, sigma = self.conds[l](zs[0])
            zs.insert(0, mu + sigma * eps[l])
        return self.join(zs)

    def to_residual(self, z: torch.Tensor) -> torch.Tensor:
        """Flat residual code ``u = cat(eps_1, ..., eps_L)`` of ``z``; the base maps to u ~ N(0, I)."""
        return self.join(self.residuals(z))

    def from_residual(self, u: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_residual`: ``z = from_residuals(split(u))``."""
        return self.from_residuals(self.split(u))

    def sample_base(self, n: int) -> torch.Tensor:
        """``n`` ancestral samples of the Gaussian hierarchy: ``[n, Z]``."""
        device = next(self.parameters()).device
        return self.from_residuals([torch.randn(n, d, device=device) for d in self.dims])
