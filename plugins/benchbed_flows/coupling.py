"""zuko's coupling neural spline flow evaluated with fewer operations: the same function.

``zuko.flows.NSF(passes=2)`` (what :class:`~benchbed_flows.density.FlowDensity` builds by default) is a
stack of two-block autoregressive layers: the features are split into a block A (``order == 0``) and a block
B (``order == 1``); block A goes through a rational-quadratic spline whose parameters do not depend on the
input (the conditioner's masks give it only the bias of its last layer), block B through a spline whose
parameters the conditioner MLP computes from x_A.  zuko evaluates such a layer generically:

* forward (density): one conditioner pass on all B rows and D features, spline parameters built for every
  feature of every example, though those of block A are the same for the whole batch;
* inverse (sampling, neural-transport chains): ``passes = 2`` fixed-point passes, each a full conditioner pass
  and a full spline inverse over all D features (the first pass only serves to find x_A);
* inverse with log-det (``rsample_and_log_prob``): the two passes plus a third, forward pass at the result
  for the Jacobian.

:class:`CouplingNSF` computes the same layers directly from the zuko modules' own parameters (nothing is
copied, so checkpoints, optimisers and ``.to(device)`` are unaffected):

* block A's spline knots once per :class:`FlowPlan` (one row per feature, not per example);
* one conditioner pass per layer in each direction, on the columns of x_A and to the rows of block B only
  (zuko's masks zero the other weights, so the products are the same sums without the zero terms);
* the inverse's log-det from the knots the inverse already gathered (the forward Jacobian at the inverse's
  result, as zuko computes it, but without the third pass);
* widths and heights of a spline normalised in one softmax/cumsum call, one gather for all knot values.

The spline formulas are zuko's (``zuko.transforms.MonotonicRQSTransform``, Durkan et al. 2019) written in
the same order of operations: densities, both directions and the inverse come out bit for bit as zuko's;
the draws' log-density (its log-det is taken in the inverse's own bin) and all gradients agree to
floating-point rounding (``tests/flows/test_coupling.py``).

Derivatives.  Autograd through these formulas records some hundred nodes per layer.  Two cheaper ways to
the same first derivatives (derived in :func:`_derivs`, :func:`_knot_grads`, :func:`knots_backward`):

* ``FlowPlan.first_order`` (training steps): each knot construction and spline evaluation is one autograd
  node with a hand-written backward (:func:`rqs_forward_backward`, :func:`rqs_inverse_backward`, the
  inverse's by implicit differentiation); not differentiable twice;
* :meth:`CouplingNSF.inverse_and_vjp` (the flow EBM's Langevin gradient through T(z), flow fixed): no
  autograd at all, a hand-written reverse pass through the layers.

A :class:`FlowPlan` holds the per-layer tensors derived from the parameters: built under
``torch.no_grad()`` it is a frozen snapshot for a whole chain run; built with gradients, it is part of the
training graph.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution
from zuko.flows import NSF
from zuko.flows.autoregressive import MaskedAutoregressiveTransform
from zuko.nn import MaskedLinear
from zuko.transforms import MonotonicRQSTransform

__all__ = ["CouplingNSF", "FlowPlan", "Knots", "knots_backward", "make_knots", "rqs_forward", "rqs_forward_backward",
           "rqs_inverse", "rqs_inverse_backward", "rqs_knots"]

#: Knots of a batch of splines, [..., F, 3, K + 1]: rows horizontal (x), vertical (y), derivatives.
Knots = torch.Tensor


# ----------------------------------------------------------------------------------------------------
# Rational-quadratic splines (zuko.transforms.MonotonicRQSTransform, same arithmetic)


@dataclass(frozen=True)
class _KnotsTape:
    """What :func:`knots_backward` needs of one :func:`rqs_knots` call."""

    softmax: torch.Tensor  # normalised widths and heights, [..., F, 2, K]
    den_wh: torch.Tensor  # 1 + |2 t / log slope| of the raw widths and heights t, [..., F, 2, K]
    exp_d: torch.Tensor  # the derivatives row, [..., F, K + 1]
    den_d: torch.Tensor  # 1 + |t / log slope| of the raw inner derivatives t, [..., F, K - 1]
    bound: float


def rqs_knots(
    params: torch.Tensor, bins: int, *, bound: float, slope: float, tape: bool = False
) -> tuple[Knots, _KnotsTape | None]:
    """Knots [..., F, 3, K + 1] of the monotonic RQS whose unconstrained parameters are ``params``
    [..., F, 3K - 1] (widths K, heights K, inner derivatives K - 1, zuko's order); with ``tape``, what
    :func:`knots_backward` needs."""
    log_slope = math.log(slope)
    wh = params[..., : 2 * bins].unflatten(-1, (2, bins))  # widths and heights, transformed alike
    derivatives = params[..., 2 * bins :]
    den_wh = 1 + abs(2 * wh / log_slope)
    den_d = 1 + abs(derivatives / log_slope)
    soft = F.softmax(wh / den_wh, dim=-1)
    exp_d = torch.exp(F.pad(derivatives / den_d, (1, 1), value=0))
    knots = torch.cat((bound * (2 * torch.cumsum(F.pad(soft, (1, 0), value=0), dim=-1) - 1), exp_d.unsqueeze(-2)), -2)
    return knots, (_KnotsTape(soft, den_wh, exp_d, den_d, bound) if tape else None)


def knots_backward(tape: _KnotsTape, g: torch.Tensor) -> torch.Tensor:
    """The gradient with respect to the parameters [..., F, 3K - 1] of :func:`rqs_knots` given the knots'
    gradient ``g`` [..., F, 3, K + 1].

    Reverse of: t / (1 + c|t|) (derivative 1 / (1 + c|t|)^2), softmax, the cumulative sum (a reversed
    cumulative sum), bound (2 c - 1), and exp for the derivatives row.
    """
    g_cum = (2 * tape.bound) * g[..., :2, :]
    g_soft = g_cum.flip(-1).cumsum(-1).flip(-1)[..., 1:]
    soft = tape.softmax
    g_wh = soft * (g_soft - (g_soft * soft).sum(-1, keepdim=True)) / tape.den_wh**2
    g_d = (g[..., 2, 1:-1] * tape.exp_d[..., 1:-1]) / tape.den_d**2
    return torch.cat((g_wh.flatten(-2), g_d), dim=-1)


class _Bin(NamedTuple):
    """The bin of each value (zuko's ``bin``): ``inside`` (not beyond the outer knots, where the spline is the
    identity), the gather index ``both`` = (k, k + 1) and the knot values at its ends; s = (y1 - y0) / (x1 - x0)."""

    inside: torch.Tensor
    both: torch.Tensor
    x0: torch.Tensor
    x1: torch.Tensor
    y0: torch.Tensor
    y1: torch.Tensor
    d0: torch.Tensor
    d1: torch.Tensor
    s: torch.Tensor


def _bin(knots: Knots, row: int, value: torch.Tensor) -> _Bin:
    """The :class:`_Bin` of ``value`` [..., F, M] among the knots' ``row`` (0: x, 1: y), [..., F, 3, K + 1].

    The bin index k is zuko's ``sum(knots < value) - 1``; -1 and K are outside.
    """
    bins = knots.shape[-1] - 1
    k = torch.sum(knots[..., row, :].unsqueeze(-2) < value.unsqueeze(-1), dim=-1) - 1
    inside = torch.logical_and(0 <= k, k < bins)
    k = k % bins
    both = torch.cat((k, k + 1), dim=-1)
    m = k.shape[-1]
    rows = knots.gather(-1, both.unsqueeze(-2).expand(*knots.shape[:-1], 2 * m)).unbind(-2)
    (x0, x1), (y0, y1), (d0, d1) = (r.split(m, dim=-1) for r in rows)
    s = (y1 - y0) / (x1 - x0)
    return _Bin(inside, both, x0, x1, y0, y1, d0, d1, s)


class _Derivs(NamedTuple):
    """Partial derivatives of the spline at fixed x (bin position z), see :func:`_derivs`."""

    r: torch.Tensor  # R
    slope: torch.Tensor  # S'(x) = s R_z
    s_rs: torch.Tensor  # s R_s
    dy_zz_den: torch.Tensor  # (y1 - y0) z(1-z) / den
    l_s: torch.Tensor | None  # L_s (with the log-det only)
    l_z: torch.Tensor | None  # L_z
    l_d0: torch.Tensor | None  # L_d0
    l_d1: torch.Tensor | None  # L_d1


def _derivs(b: _Bin, z: torch.Tensor, log_det: bool) -> _Derivs:
    """The spline S(x) = y0 + (y1 - y0) R and its log-slope L = log S'(x) differentiated at fixed x.

    With s = (y1 - y0)/(x1 - x0), z = (x - x0)/(x1 - x0), lam = d0 + d1 - 2s, den = s + lam z(1-z),
    R = (s z^2 + d0 z(1-z)) / den and nj = 2 s z(1-z) + d0 (1-z)^2 + d1 z^2 (so S' = s^2 nj / den^2 = s R_z),
    the partial derivatives in (s, d0, d1, z) are

        R_z = (2 s z + (d0 - R lam)(1 - 2z)) / den          R_s = (z^2 - R (1 - 2 z(1-z))) / den
        L_s = 2/s + 2 z(1-z)/nj - 2 (1 - 2 z(1-z))/den      L_z = 2 (s (1-2z) - d0 (1-z) + d1 z)/nj - 2 lam (1-2z)/den
        L_d0 = (1-z)^2/nj - 2 z(1-z)/den                    L_d1 = z^2/nj - 2 z(1-z)/den

    and R_d0 = z(1-z)(1 - R)/den, R_d1 = -z(1-z) R/den.
    """
    s, d0, d1 = b.s, b.d0, b.d1
    omz = 1 - z
    zz = z * omz
    one_2z = omz - z
    lam = d0 + d1 - 2 * s
    den = s + lam * zz
    r = (s * z * z + d0 * zz) / den
    slope = s * (2 * s * z + (d0 - r * lam) * one_2z) / den
    s_rs = s * (z * z - r * (1 - 2 * zz)) / den
    dy_zz_den = (b.y1 - b.y0) * zz / den
    if not log_det:
        return _Derivs(r, slope, s_rs, dy_zz_den, None, None, None, None)
    nj = 2 * s * zz + d0 * omz * omz + d1 * z * z
    two = 2 * zz / den
    l_s = 2 / s + 2 * zz / nj - 2 * (1 - 2 * zz) / den
    l_z = 2 * (s * one_2z - d0 * omz + d1 * z) / nj - 2 * lam * one_2z / den
    return _Derivs(r, slope, s_rs, dy_zz_den, l_s, l_z, omz * omz / nj - two, z * z / nj - two)


def _knot_grads(
    b: _Bin, z: torch.Tensor, d: _Derivs, w_s: torch.Tensor | None, w_l: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the per-value weights ``w_s`` of S and ``w_l`` of L = log S' (``None``: 0), the derivative of
    w_s S + w_l L at fixed knots in x, and at fixed x in the knot values p = (x0, x1), (y0, y1), (d0, d1)
    ([..., F, 3, 2M], the layout of :func:`_bin`'s gather).

    By the chain rule through s and z (ds/dx0 = s/dx, dz/dx0 = (z-1)/dx, ds/dx1 = -s/dx, dz/dx1 = -z/dx,
    ds/dy1 = -ds/dy0 = 1/dx, dx = x1 - x0), with U = w_s s R_s + w_l L_s/dx and V = w_s s R_z + w_l L_z/dx:
    d/dx = V, d/dx0 = s U - (1-z) V, d/dx1 = -(s U + z V), d/dy1 = w_s R + U, d/dy0 = w_s - d/dy1,
    d/dd0 = w_s (y1 - y0) R_d0 + w_l L_d0, d/dd1 = w_s (y1 - y0) R_d1 + w_l L_d1.
    """
    s = b.s
    c = None if w_l is None else w_l / (b.x1 - b.x0)
    u_terms, v_terms = [], []
    if w_s is not None:
        u_terms.append(w_s * d.s_rs)
        v_terms.append(w_s * d.slope)
    if c is not None:
        assert d.l_s is not None and d.l_z is not None
        u_terms.append(c * d.l_s)
        v_terms.append(c * d.l_z)
    u, v = (sum(u_terms[1:], u_terms[0]), sum(v_terms[1:], v_terms[0]))
    su = s * u
    g_y1 = u if w_s is None else w_s * d.r + u
    g_y0 = -g_y1 if w_s is None else w_s - g_y1
    if w_s is not None:
        wd = w_s * d.dy_zz_den
        g_d1 = -wd * d.r
        g_d0 = wd + g_d1
    if w_l is not None:
        assert d.l_d0 is not None and d.l_d1 is not None
        l_d0, l_d1 = w_l * d.l_d0, w_l * d.l_d1
        g_d0, g_d1 = (l_d0, l_d1) if w_s is None else (g_d0 + l_d0, g_d1 + l_d1)
    grads = torch.cat((su - (1 - z) * v, -(su + z * v), g_y0, g_y1, g_d0, g_d1), dim=-1)
    return v, grads.unflatten(-1, (3, -1))


def _scatter(grads: torch.Tensor, b: _Bin, shape: torch.Size) -> torch.Tensor:
    """Knot gradients [*shape] from per-value ones ([..., F, 3, 2M], :func:`_knot_grads`): gather's reverse."""
    return grads.new_zeros(shape).scatter_add_(-1, b.both.unsqueeze(-2).expand(grads.shape), grads)


def rqs_forward_backward(
    b: _Bin, z: torch.Tensor, g_y: torch.Tensor | None, g_l: torch.Tensor | None, knots_shape: torch.Size | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of (y, log S') = :func:`rqs_forward` given g_y = dL/dy and g_l = dL/dlog S' (``None``: 0):
    ``(dL/dx, dL/dknots or None when knots_shape is None)``.  Outside the knots y = x and log S' = 0."""
    d = _derivs(b, z, g_l is not None)
    w_s = None if g_y is None else torch.where(b.inside, g_y, 0.0)
    w_l = None if g_l is None else torch.where(b.inside, g_l, 0.0)
    dx, grads = _knot_grads(b, z, d, w_s, w_l)
    g_x = torch.where(b.inside, dx, 0.0 if g_y is None else g_y)
    return g_x, (None if knots_shape is None else _scatter(grads, b, knots_shape))


def rqs_inverse_backward(
    b: _Bin, z: torch.Tensor, g_x: torch.Tensor | None, g_l: torch.Tensor | None, knots_shape: torch.Size | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of (x, log S'(x)) = :func:`rqs_inverse` (``b``, ``z`` of its bin) given g_x = dL/dx and
    g_l = dL/dlog S' (``None``: 0): ``(dL/dy, dL/dknots or None when knots_shape is None)``.

    Implicit-function derivatives: x = S^{-1}(y) has dx/dy = 1 / S'(x) and, for a knot value p,
    dx/dp = -(dS/dp at fixed x) / S'(x); log S'(x) depends on p directly and through x.  Outside the knots
    x = y: dL/dy = g_x, no knot gradient.
    """
    d = _derivs(b, z, g_l is not None)
    h = torch.zeros_like(z) if g_x is None else g_x
    if g_l is not None:
        assert d.l_z is not None
        h = h + g_l * d.l_z / (b.x1 - b.x0)  # dL/dx with log S' a function of x
    u = h / d.slope
    g_y = torch.where(b.inside, u, 0.0 if g_x is None else g_x)
    if knots_shape is None:
        return g_y, None
    w_l = None if g_l is None else torch.where(b.inside, g_l, 0.0)
    _, grads = _knot_grads(b, z, d, torch.where(b.inside, -u, 0.0), w_l)
    return g_y, _scatter(grads, b, knots_shape)


def _jacobian(
    z: torch.Tensor, omz: torch.Tensor, den: torch.Tensor, s: torch.Tensor, d0: torch.Tensor, d1: torch.Tensor
) -> torch.Tensor:
    """dy/dx of a spline at the bin position ``z`` (``omz = 1 - z``, ``den`` the formula's denominator), as
    zuko writes it."""
    return s**2 * (2 * s * z * omz + d0 * omz**2 + d1 * z**2) / den**2


def _forward_in_bin(x: torch.Tensor, b: _Bin) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, log S'(x), z)``: zuko's forward formulas in the bin ``b`` of ``x``."""
    inside, _, x0, x1, y0, y1, d0, d1, s = b
    z = torch.where(inside, (x - x0) / (x1 - x0), 0.0)
    omz = 1 - z
    den = s + (d0 + d1 - 2 * s) * z * omz
    y = y0 + (y1 - y0) * (s * z**2 + d0 * z * omz) / den
    return torch.where(inside, y, x), torch.where(inside, _jacobian(z, omz, den, s, d0, d1).log(), 0.0), z


def _inverse_in_bin(y: torch.Tensor, b: _Bin) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, z)``: the inverse at ``y`` and its position z in the bin (zuko's quadratic-root formula)."""
    dy = b.y1 - b.y0
    lam = b.d0 + b.d1 - 2 * b.s
    y_ = torch.where(b.inside, y - b.y0, 0.0)
    qa = dy * (b.s - b.d0) + y_ * lam
    qb = dy * b.d0 - y_ * lam
    qc = -b.s * y_
    z = 2 * qc / (-qb - (qb**2 - 4 * qa * qc).sqrt())
    return torch.where(b.inside, b.x0 + z * (b.x1 - b.x0), y), z


def _inverse_log_jacobian(b: _Bin, z: torch.Tensor) -> torch.Tensor:
    """log S' at the inverse's result, from its bin position ``z`` (0 outside the knots)."""
    omz = 1 - z
    den = b.s + (b.d0 + b.d1 - 2 * b.s) * z * omz
    return torch.where(b.inside, _jacobian(z, omz, den, b.s, b.d0, b.d1).log(), 0.0)


class _KnotsFn(torch.autograd.Function):
    """:func:`rqs_knots` as one autograd node (backward :func:`knots_backward`)."""

    @staticmethod
    def forward(ctx: Any, params: torch.Tensor, bins: int, bound: float, slope: float) -> torch.Tensor:
        knots, tape = rqs_knots(params, bins, bound=bound, slope=slope, tape=True)
        ctx.tape = tape
        return knots

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        return knots_backward(ctx.tape, g), None, None, None


class _ForwardFn(torch.autograd.Function):
    """:func:`rqs_forward` as one autograd node (backward :func:`rqs_forward_backward`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, knots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = _bin(knots, 0, x)
        y, ladj, z = _forward_in_bin(x, b)
        ctx.bin, ctx.z, ctx.knots_shape = b, z, knots.shape
        return y, ladj

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_y: torch.Tensor | None, g_l: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        shape = ctx.knots_shape if ctx.needs_input_grad[1] else None
        g_x, g_k = rqs_forward_backward(ctx.bin, ctx.z, g_y, g_l, shape)
        return g_x, g_k


class _InverseFn(torch.autograd.Function):
    """:func:`rqs_inverse` as one autograd node (backward :func:`rqs_inverse_backward`)."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, knots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = _bin(knots, 1, y)
        x, z = _inverse_in_bin(y, b)
        ctx.bin, ctx.z, ctx.knots_shape = b, z, knots.shape
        return x, _inverse_log_jacobian(b, z)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_x: torch.Tensor | None, g_l: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        shape = ctx.knots_shape if ctx.needs_input_grad[1] else None
        return rqs_inverse_backward(ctx.bin, ctx.z, g_x, g_l, shape)


def make_knots(params: torch.Tensor, bins: int, *, bound: float, slope: float, first_order: bool) -> Knots:
    """:func:`rqs_knots` without a tape; ``first_order``: as one autograd node (not differentiable twice)."""
    if first_order and torch.is_grad_enabled() and params.requires_grad:
        return _KnotsFn.apply(params, bins, bound, slope)
    return rqs_knots(params, bins, bound=bound, slope=slope)[0]


def rqs_forward(x: torch.Tensor, knots: Knots, *, first_order: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The splines at ``x`` [..., F, M] (M values per spline): ``(y, log |dy/dx|)``, both [..., F, M].

    The identity outside ``[-bound, bound]`` (log-det 0), as zuko's.  ``first_order``: one autograd node
    with hand-written derivatives (:func:`rqs_forward_backward`; far fewer operations, not differentiable
    twice); otherwise every operation is recorded.
    """
    if first_order and torch.is_grad_enabled() and (x.requires_grad or knots.requires_grad):
        return _ForwardFn.apply(x, knots)
    y, ladj, _ = _forward_in_bin(x, _bin(knots, 0, x))
    return y, ladj


def rqs_inverse(
    y: torch.Tensor, knots: Knots, *, ladj: bool, first_order: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The inverse splines at ``y`` [..., F, M]: ``(x, log |dy/dx| at x or None)``, both [..., F, M].

    The log-det is the forward spline's, at the returned x and in y's bin (zuko evaluates it at x in
    x's bin: the same bin up to rounding at a knot).  ``first_order`` as for :func:`rqs_forward`.
    """
    if first_order and torch.is_grad_enabled() and (y.requires_grad or knots.requires_grad):
        x, log_jac = _InverseFn.apply(y, knots)
        return x, (log_jac if ladj else None)
    b = _bin(knots, 1, y)
    x, z = _inverse_in_bin(y, b)
    return x, (_inverse_log_jacobian(b, z) if ladj else None)


# ----------------------------------------------------------------------------------------------------
# Coupling layers


@dataclass(frozen=True)
class _LayerPlan:
    """Tensors of one layer derived from its parameters (see :meth:`_Layer.plan`)."""

    hidden: tuple[tuple[torch.Tensor, torch.Tensor | None], ...]  # conditioner layers before the last
    w_out: torch.Tensor  # last conditioner layer, the rows of block B
    b_out: torch.Tensor
    knots_a: Knots  # block A's knots (from the last layer's bias), [F_A, 3, K + 1]


@dataclass(frozen=True)
class FlowPlan:
    """Everything :class:`CouplingNSF` derives from the flow's parameters, for one set of parameter values."""

    layers: tuple[_LayerPlan, ...]
    base: Distribution
    #: Evaluate the splines as single autograd nodes with hand-written derivatives (a training step's
    #: ``backward()``); results are then not differentiable twice.
    first_order: bool = False


def _masked_weight(layer: MaskedLinear, rows: slice, cols: slice, dense: bool) -> torch.Tensor:
    """``(mask * weight)[rows, cols]``, the multiplication skipped where that block of the mask is all ones."""
    if dense:
        return layer.weight[rows, cols]
    return (layer.mask[rows, cols] * layer.weight[rows, cols])


def _block(order: torch.Tensor, value: int) -> slice | None:
    """The features whose ``order`` is ``value`` as a contiguous slice, ``None`` if they are not contiguous."""
    idx = (order == value).nonzero().flatten().tolist()
    if not idx or idx != list(range(idx[0], idx[-1] + 1)):
        return None
    return slice(idx[0], idx[-1] + 1)


@dataclass(frozen=True)
class _InverseTape:
    """What :meth:`_Layer.inverse_backward` needs of one :meth:`_Layer.inverse_taped` call."""

    bin_a: _Bin
    z_a: torch.Tensor
    hidden: tuple[torch.Tensor, ...]  # the conditioner's ReLU outputs
    knots: _KnotsTape
    knots_shape: torch.Size
    bin_b: _Bin
    z_b: torch.Tensor


class _Layer:
    """One ``MaskedAutoregressiveTransform`` with ``passes=2`` and RQS splines, evaluated block-wise.

    Raises:
        ValueError: the transform is not of that form (the caller then keeps zuko's own evaluation).
    """

    def __init__(self, t: nn.Module) -> None:
        if not isinstance(t, MaskedAutoregressiveTransform) or t.passes != 2 or t.order is None:
            raise ValueError("not a two-block (coupling) masked autoregressive transform")
        univariate = t.univariate
        if not (isinstance(univariate, functools.partial) and univariate.func is MonotonicRQSTransform
                and not univariate.args and set(univariate.keywords) <= {"slope", "bound"}):
            raise ValueError("not a rational-quadratic spline transform")
        self.slope = float(univariate.keywords.get("slope", 1e-3))
        self.bound = float(univariate.keywords.get("bound", 5.0))
        shapes = [tuple(s) for s in t.shapes]
        self.bins = shapes[0][0] if shapes and len(shapes[0]) == 1 else 0
        if self.bins < 2 or shapes != [(self.bins,), (self.bins,), (self.bins - 1,)]:
            raise ValueError(f"unexpected spline parameter shapes {shapes}")
        self.total = t.total
        a, b = _block(t.order, 0), _block(t.order, 1)
        if a is None or b is None or int(t.order.max()) != 1:
            raise ValueError("the two blocks are not contiguous feature ranges")
        self.a, self.b = a, b
        layers = list(t.hyper)
        linears = [i for i, m in enumerate(layers) if isinstance(m, MaskedLinear)]
        if not linears or linears[-1] != len(layers) - 1 or linears[0] != 0 or any(
            j - i != 2 for i, j in zip(linears, linears[1:], strict=False)
        ):
            raise ValueError("the conditioner is not an alternation of masked linear layers and activations")
        self.linears: list[MaskedLinear] = [layers[i] for i in linears]
        self.activations = [layers[i + 1] for i in linears[:-1]]
        #: The hand-written inverse VJP (:meth:`inverse_backward`) knows ReLU only (zuko's default).
        self.relu = all(type(act) is nn.ReLU for act in self.activations)
        every = slice(None)
        out_a = slice(a.start * self.total, a.stop * self.total)
        self.out_b = slice(b.start * self.total, b.stop * self.total)
        first, last = self.linears[0], self.linears[-1]
        if last.bias is None:
            raise ValueError("the conditioner's last layer has no bias")
        if bool(first.mask[:, b].any()) or bool(last.mask[out_a].any()):
            raise ValueError("block B feeds the conditioner, or block A's splines depend on the input")
        self.cols = [a] + [every] * (len(self.linears) - 1)
        self.rows = [every] * (len(self.linears) - 1) + [self.out_b]
        # Which weight blocks the masks leave whole (no product needed); zuko fixes the masks at construction.
        self.dense = [bool(m.mask[r, c].all()) for m, r, c in zip(self.linears, self.rows, self.cols, strict=True)]

    def _knots(self, params: torch.Tensor, first_order: bool) -> Knots:
        return make_knots(params, self.bins, bound=self.bound, slope=self.slope, first_order=first_order)

    def plan(self, first_order: bool) -> _LayerPlan:
        """The conditioner's weights restricted to the blocks that enter (masked where the mask is not
        whole), and block A's knots from the last layer's bias."""
        weights = [_masked_weight(m, r, c, d) for m, r, c, d in zip(self.linears, self.rows, self.cols, self.dense,
                                                                       strict=True)]
        biases = [m.bias for m in self.linears]
        bias = self.linears[-1].bias
        assert bias is not None  # checked in __init__
        phi_a = bias[self.a.start * self.total : self.a.stop * self.total].unflatten(-1, (-1, self.total))
        return _LayerPlan(
            hidden=tuple(zip(weights[:-1], biases[:-1], strict=True)),
            w_out=weights[-1],
            b_out=bias[self.out_b],
            knots_a=self._knots(phi_a, first_order),
        )

    def conditioner(
        self, x_a: torch.Tensor, plan: _LayerPlan, hidden: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Block B's unconstrained spline parameters [B, F_B, 3K - 1] from x_A [B, F_A] (one MLP pass);
        the hidden activations are appended to ``hidden`` when given."""
        h = x_a
        for (w, bias), act in zip(plan.hidden, self.activations, strict=True):
            h = F.relu(F.linear(h, w, bias)) if isinstance(act, nn.ReLU) else act(F.linear(h, w, bias))
            if hidden is not None:
                hidden.append(h)
        return F.linear(h, plan.w_out, plan.b_out).unflatten(-1, (-1, self.total))

    def _join(self, part_a: torch.Tensor, part_b: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Block A's and block B's parts along the feature dimension ``dim``, in feature order."""
        return torch.cat((part_a, part_b) if self.a.start == 0 else (part_b, part_a), dim=dim)

    def forward(self, x: torch.Tensor, plan: _LayerPlan, first_order: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log |det dy/dx|)`` of x [B, D]: ([B, D], [B]).

        Both blocks in one spline evaluation (the input of both is known): block A's knots from the plan,
        broadcast over the batch next to block B's.
        """
        knots_b = self._knots(self.conditioner(x[:, self.a], plan), first_order)
        knots = self._join(plan.knots_a.expand(x.shape[0], *plan.knots_a.shape), knots_b, dim=1)
        y, ladj = rqs_forward(x.unsqueeze(-1), knots, first_order=first_order)
        return y.squeeze(-1), ladj.squeeze(-1).sum(dim=-1)

    def inverse(
        self, y: torch.Tensor, plan: _LayerPlan, ladj: bool, first_order: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(x, log |det dy/dx| at x or None)`` of y [B, D] (the layer's inverse): ([B, D], [B] or None).

        Block A (one spline per row of [F_A, B], the batch along the values) first, then block B from the
        conditioner at x_A.
        """
        x_a, ladj_a = rqs_inverse(y[:, self.a].t(), plan.knots_a, ladj=ladj, first_order=first_order)
        x_a = x_a.t()
        knots_b = self._knots(self.conditioner(x_a, plan), first_order)
        x_b, ladj_b = rqs_inverse(y[:, self.b].unsqueeze(-1), knots_b, ladj=ladj, first_order=first_order)
        x = self._join(x_a, x_b.squeeze(-1))
        if ladj_a is None or ladj_b is None:
            return x, None
        return x, self._join(ladj_a.t(), ladj_b.squeeze(-1)).sum(dim=-1)

    def inverse_taped(self, y: torch.Tensor, plan: _LayerPlan) -> tuple[torch.Tensor, _InverseTape]:
        """:meth:`inverse` without log-det (the same values), keeping what :meth:`inverse_backward` needs.
        Meant for no-grad mode."""
        bin_a = _bin(plan.knots_a, 1, y[:, self.a].t())
        x_a, z_a = _inverse_in_bin(y[:, self.a].t(), bin_a)
        x_a = x_a.t()
        hidden: list[torch.Tensor] = []
        knots_b, ktape = rqs_knots(self.conditioner(x_a, plan, hidden), self.bins, bound=self.bound, slope=self.slope,
                                   tape=True)
        assert ktape is not None
        y_b = y[:, self.b].unsqueeze(-1)
        bin_b = _bin(knots_b, 1, y_b)
        x_b, z_b = _inverse_in_bin(y_b, bin_b)
        return self._join(x_a, x_b.squeeze(-1)), _InverseTape(bin_a, z_a, tuple(hidden), ktape, knots_b.shape,
                                                              bin_b, z_b)

    def inverse_backward(self, tape: _InverseTape, plan: _LayerPlan, g: torch.Tensor) -> torch.Tensor:
        """dL/dy [B, D] of the inverse x(y) given g = dL/dx [B, D], the parameters held fixed (ReLU
        conditioners only): block B's spline, its knots, the conditioner back to x_A, then block A's spline."""
        g_yb, g_knots = rqs_inverse_backward(tape.bin_b, tape.z_b, g[:, self.b].unsqueeze(-1), None, tape.knots_shape)
        assert g_knots is not None
        v = knots_backward(tape.knots, g_knots).flatten(-2) @ plan.w_out
        for (w, _), h in zip(reversed(plan.hidden), reversed(tape.hidden), strict=True):
            v = torch.ops.aten.threshold_backward(v, h, 0) @ w  # ReLU: pass where the output is positive
        g_ya, _ = rqs_inverse_backward(tape.bin_a, tape.z_a, (g[:, self.a] + v).t(), None, None)
        return self._join(g_ya.t(), g_yb.squeeze(-1))


class CouplingNSF:
    """Block-wise evaluation of a ``zuko.flows.NSF`` built with ``passes=2`` (module docstring).

    Holds references to the flow's modules, never copies of its tensors: a plan built after an optimiser
    step or a ``load_state_dict`` sees the new values.  Not an ``nn.Module``, so the flow's parameters are
    registered once.

    Raises:
        ValueError: the flow is not a coupling NSF of that form (e.g. ``passes=None``, one feature).
    """

    def __init__(self, flow: NSF) -> None:
        transforms = getattr(flow.transform, "transforms", None)
        if not isinstance(flow, NSF) or transforms is None or len(transforms) == 0:
            raise ValueError("not a zuko NSF")
        self.flow = flow
        self.layers = [_Layer(t) for t in transforms]

    def plan(self, *, first_order: bool = False) -> FlowPlan:
        """The per-layer tensors for the parameters' current values (graph-connected in grad mode);
        ``first_order``: see :attr:`FlowPlan.first_order`."""
        return FlowPlan(tuple(layer.plan(first_order) for layer in self.layers), self.flow.base(), first_order)

    def forward(self, y: torch.Tensor, plan: FlowPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log |det dz/dy|)`` = F(y) and its log-det: ([B, D], [B])."""
        acc: torch.Tensor | float = 0
        for layer, lp in zip(self.layers, plan.layers, strict=True):
            y, ladj = layer.forward(y, lp, plan.first_order)
            acc = acc + ladj
        assert isinstance(acc, torch.Tensor)
        return y, acc

    def inverse(self, z: torch.Tensor, plan: FlowPlan) -> torch.Tensor:
        """y = T(z) = F^{-1}(z): [B, D]."""
        for layer, lp in zip(reversed(self.layers), reversed(plan.layers), strict=True):
            z, _ = layer.inverse(z, lp, False, plan.first_order)
        return z

    @property
    def has_inverse_vjp(self) -> bool:
        """Whether :meth:`inverse_and_vjp` is available (ReLU conditioners, zuko's default)."""
        return all(layer.relu for layer in self.layers)

    def inverse_and_vjp(
        self, z: torch.Tensor, plan: FlowPlan
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """``(y, vjp)``: y = T(z) [B, D] as :meth:`inverse` computes it, and ``vjp(v) = v^T dT/dz`` [B, D],
        both without autograd (a hand-written reverse pass through the layers, the parameters fixed at
        ``plan``: no parameter gradients, so build ``plan`` under ``torch.no_grad()``).

        Raises:
            ValueError: a conditioner activation other than ReLU (:attr:`has_inverse_vjp`).
        """
        if not self.has_inverse_vjp:
            raise ValueError("inverse_and_vjp: the conditioners must use ReLU")
        tapes = []
        with torch.no_grad():
            for layer, lp in zip(reversed(self.layers), reversed(plan.layers), strict=True):
                z, tape = layer.inverse_taped(z, lp)
                tapes.append(tape)

        def vjp(v: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                for layer, lp, tape in zip(self.layers, plan.layers, reversed(tapes), strict=True):
                    v = layer.inverse_backward(tape, lp, v)
            return v

        return z, vjp

    def log_prob(self, y: torch.Tensor, plan: FlowPlan) -> torch.Tensor:
        """log q_Y(y) = log N(F(y); 0, I) + log |det dF/dy|: [B]."""
        z, ladj = self.forward(y, plan)
        return plan.base.log_prob(z) + ladj

    def rsample_and_log_prob(self, n: int, plan: FlowPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws y = T(z), z ~ N(0, I) (zuko's base draw, the same random numbers), and
        log q_Y(y): ([n, D], [n])."""
        z = plan.base.rsample((n,))
        log_p = plan.base.log_prob(z)
        acc: torch.Tensor | float = 0
        y = z
        for layer, lp in zip(reversed(self.layers), reversed(plan.layers), strict=True):
            y, ladj = layer.inverse(y, lp, True, plan.first_order)
            assert ladj is not None
            acc = acc + ladj
        return y, log_p + acc
