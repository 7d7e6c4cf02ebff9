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

Chains' gradients (:meth:`JointLatentPrior.grad_fn`): the value and the gradient of either form,
written out layer by layer over :func:`benchbed.blocks.fused.jet` (hand-written input VJPs of the
MLPs, no autograd tape), for :func:`benchbed.blocks.fused.fused_log_density`.  Same mathematics as
autograd through :meth:`JointLatentPrior.log_prob` / :meth:`JointLatentPrior.from_residual`, equal to
floating-point rounding (``tests/ebm/test_hlebm.py``).

A joint latent code is one flat tensor ``z = cat(z_1, ..., z_L)`` of shape ``[..., sum(dims)]``, so
any benchbed sampler can run joint dynamics over all layers at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchbed.blocks.fused import GradFn, jet
from benchbed.blocks.gaussian import LOG_2PI, std_normal_log_prob
from benchbed.blocks.nets import mlp
from benchbed_ebm.gaussian import LOG_SIGMA_MAX, SIGMA_FLOOR, ConditionalGaussian

SPACES = ("z", "residual")


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

    # ------------------------------------------------------------------ fused value and gradient
    def grad_fn(self, space: str, bottom: GradFn | None = None) -> GradFn:
        """``(z, need_value, need_grad) -> (log p [B] | None, grad [B, Z] | None)`` for the chains.

        The log density is the prior's, plus ``bottom(z_1)`` when given (a term on the bottom layer
        only, e.g. hlebm's ``log p(x | z_1)``; itself a :data:`~benchbed.blocks.fused.GradFn` on
        ``[B, d_1]``), in the chosen coordinates:

        * ``space="z"``: ``log p(z) = sum_l f_l(z_l) + sum_{l<L} log N(z_l; mu_l, sigma_l^2) + log N(z_L; 0, I)``
          (:meth:`log_prob`), gradient wrt z;
        * ``space="residual"``: ``sum_l f_l(z_l(u)) + log N(u; 0, I)`` with ``z = from_residual(u)``,
          gradient wrt u (the chain rule through the top-down pass).

        Each network runs once forward and once backward (its input VJP) per call, with no autograd
        tape (:func:`~benchbed.blocks.fused.jet`); a net that is not a dense stack falls back to a
        local autograd graph, so callers freeze the weights while the chains run.  The jets hold the
        parameter tensors, which optimisers update in place: a function stays valid across
        optimiser steps, not across a ``.to(device)``.  Gradients are not differentiable again.

        Raises:
            ValueError: ``space`` is not ``"z"`` or ``"residual"``.
        """
        if space not in SPACES:
            raise ValueError(f"JointLatentPrior.grad_fn: space must be one of {SPACES}, got {space!r}")
        energy_jets = [jet(f) for f in self.energies]
        cond_jets = [_CondJet(c) for c in self.conds if isinstance(c, ConditionalGaussian)]
        assert len(cond_jets) == len(self.conds)  # built in __init__
        top = self.n_layers - 1

        def energies(zs: list[torch.Tensor], need_value: bool, need_grad: bool,
                     ) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
            """``sum_l f_l(z_l)`` [B] and its gradient per layer, plus ``bottom`` on z_1."""
            values, grads = [], []
            for e_jet, zl in zip(energy_jets, zs, strict=True):
                f, tape = e_jet.forward(zl, need_grad, need_value)  # no scalar-head product unless asked
                if need_value:
                    assert f is not None  # the head runs when the value is asked for
                    values.append(f.reshape(-1))
                grads.append(e_jet.vjp_sum(tape) if need_grad else None)
            value = torch.stack(values).sum(0) if need_value else None
            if bottom is not None:
                b_value, b_grad = bottom(zs[0], need_value, need_grad)
                if value is not None and b_value is not None:
                    value = value + b_value
                if b_grad is not None:
                    grads[0] = _add(grads[0], b_grad)
            return value, grads

        def fn_z(z: torch.Tensor, need_value: bool, need_grad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            zs = self.split(z)
            value, grads = energies(zs, need_value, need_grad)
            for l, c_jet in enumerate(cond_jets):
                # log N(z_l; mu, sigma^2) = sum -u^2/2 - log sigma - log(2 pi)/2,  u = (z_l - mu) / sigma
                mu, sigma, tape = c_jet.forward(zs[l + 1], need_grad)
                u = (zs[l] - mu) / sigma
                if value is not None:
                    value = value + (-0.5 * u * u - torch.log(sigma) - 0.5 * LOG_2PI).sum(-1)
                if need_grad:
                    u_over_s = u / sigma  # d/dz_l = -u/sigma, d/dmu = u/sigma, d/dsigma = (u^2 - 1)/sigma
                    grads[l] = _add(grads[l], -u_over_s)
                    grads[l + 1] = _add(grads[l + 1], c_jet.vjp(tape, u_over_s, (u * u - 1.0) / sigma))
            if value is not None:
                value = value + std_normal_log_prob(zs[top])
            if not need_grad:
                return value, None
            grads[top] = _add(grads[top], -zs[top])
            return value, torch.cat(_all_set(grads), dim=-1)

        def fn_residual(u: torch.Tensor, need_value: bool, need_grad: bool,
                        ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            eps = self.split(u)
            zs: list[torch.Tensor] = [eps[top]] * self.n_layers  # filled top-down below
            sigmas: list[torch.Tensor] = []
            tapes: list[Any] = []
            for l in range(top - 1, -1, -1):  # z_l = mu_l(z_{l+1}) + sigma_l(z_{l+1}) eps_l
                mu, sigma, tape = cond_jets[l].forward(zs[l + 1], need_grad)
                zs[l] = mu + sigma * eps[l]
                sigmas.insert(0, sigma)
                tapes.insert(0, tape)
            value, grads = energies(zs, need_value, need_grad)
            if value is not None:
                value = value + std_normal_log_prob(u)
            if not need_grad:
                return value, None
            # Chain rule bottom-up: dL/deps_l = dL/dz_l * sigma_l; dL/dz_{l+1} gains the VJP of
            # (mu_l, sigma_l) with v_mu = dL/dz_l, v_sigma = dL/dz_l * eps_l.
            g_eps: list[torch.Tensor] = []
            for l in range(top):
                g = grads[l]
                assert g is not None
                g_eps.append(g * sigmas[l])
                grads[l + 1] = _add(grads[l + 1], cond_jets[l].vjp(tapes[l], g, g * eps[l]))
            g_top = grads[top]
            assert g_top is not None
            g_eps.append(g_top)
            return value, torch.cat(g_eps, dim=-1).sub_(u)  # the cat is fresh: - grad of log N(u; 0, I)

        return fn_z if space == "z" else fn_residual


def _all_set(grads: list[torch.Tensor | None]) -> list[torch.Tensor]:
    """``grads`` with its ``None`` entries ruled out (every layer has an energy term, so each is set)."""
    out = [g for g in grads if g is not None]
    assert len(out) == len(grads)
    return out


def _add(acc: torch.Tensor | None, g: torch.Tensor) -> torch.Tensor:
    """``acc + g`` out of place (a VJP may return a view of a weight), or ``g`` when ``acc`` is None."""
    return g if acc is None else acc + g


class _CondJet:
    """``(mu, sigma)`` of a :class:`~benchbed_ebm.gaussian.ConditionalGaussian` and its input VJP, tape-free.

    Forward, as ``ConditionalGaussian.forward``: ``(mu_raw, r) = net(c)``, ``mu = mu_raw [+ c W^T]``,
    ``sigma = exp(min(r, LOG_SIGMA_MAX)) + SIGMA_FLOOR``.  VJP with ``(v_mu, v_sigma)`` [B, d_out]:
    ``v_r = v_sigma * exp(min(r, max)) * [r <= max]`` (torch's clamp passes the gradient where
    ``r <= max``), ``v_c = net^T(cat(v_mu, v_r)) [+ v_mu W]``.
    """

    def __init__(self, cond: ConditionalGaussian) -> None:
        self.net = jet(cond.net)
        self.skip = cond.skip.weight if cond.skip is not None else None  # [d_out, d_in], bias-free

    def forward(self, c: torch.Tensor, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """``(mu [B, d_out], sigma [B, d_out], tape)`` for ``c`` [B, d_in] (tape ``None`` without ``need_grad``)."""
        out, net_tape = self.net.forward(c, need_grad)
        assert out is not None  # need_out defaults to True
        mu, r = out.chunk(2, dim=-1)
        if self.skip is not None:
            mu = mu + F.linear(c, self.skip)
        e = r.clamp(max=LOG_SIGMA_MAX).exp()
        return mu, e + SIGMA_FLOOR, ((net_tape, r, e) if need_grad else None)

    def vjp(self, tape: Any, v_mu: torch.Tensor, v_sigma: torch.Tensor) -> torch.Tensor:
        """``v_mu^T dmu/dc + v_sigma^T dsigma/dc``: [B, d_in]."""
        net_tape, r, e = tape
        v_r = (v_sigma * e).masked_fill_(r > LOG_SIGMA_MAX, 0.0)
        v_c = self.net.vjp(net_tape, torch.cat([v_mu, v_r], dim=-1))
        return v_c if self.skip is None else v_c + v_mu @ self.skip
