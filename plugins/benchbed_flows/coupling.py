"""zuko's coupling neural spline flow evaluated with about half the operations: the same function.

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

* block A's spline knots once per :meth:`CouplingNSF.plan` (one row per feature, not per example);
* one conditioner pass per layer in each direction, on the columns of x_A and to the rows of block B only
  (zuko's masks zero the other weights, so the products are the same sums without the zero terms);
* the inverse's log-det from the knots the inverse already gathered (the forward Jacobian at the inverse's
  result, as zuko computes it, but without the third pass);
* widths and heights of a spline normalised in one softmax/cumsum call.

The spline formulas are zuko's (``zuko.transforms.MonotonicRQSTransform``, Durkan et al. 2019) written in
the same order of operations; only where the terms are summed differently (the conditioner's first matmul,
the inverse's log-det taken at the inverse's own bin) can results differ, by floating-point rounding
(``tests/flows/test_coupling.py`` compares both paths).  A :class:`FlowPlan` holds the per-layer tensors
derived from the parameters: built under ``torch.no_grad()`` it is a frozen copy for a whole chain run
(the neural-transport chains of ``flow_ebm``); built with gradients, it is part of the training graph.
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


class _Local(NamedTuple):
    """Terms of the spline's formula at the bin position z (zuko's notation, see :func:`_grads`)."""

    z: torch.Tensor
    omz: torch.Tensor  # 1 - z
    zz: torch.Tensor  # z (1 - z)
    lam: torch.Tensor  # d0 + d1 - 2 s
    den: torch.Tensor  # s + lam z (1 - z)
    nj: torch.Tensor  # 2 s z (1 - z) + d0 (1 - z)^2 + d1 z^2
    jac: torch.Tensor  # S'(x) = s^2 nj / den^2


def _local(b: _Bin, z: torch.Tensor) -> _Local:
    omz = 1 - z
    zz = z * omz
    lam = b.d0 + b.d1 - 2 * b.s
    den = b.s + lam * zz
    nj = 2 * b.s * zz + b.d0 * omz**2 + b.d1 * z**2
    return _Local(z, omz, zz, lam, den, nj, b.s**2 * nj / den**2)


def _dlogjac_dz(b: _Bin, t: _Local) -> torch.Tensor:
    """d log S' / dz at fixed knots."""
    return (2 * b.s * (1 - 2 * t.z) - 2 * b.d0 * t.omz + 2 * b.d1 * t.z) / t.nj - 2 * t.lam * (1 - 2 * t.z) / t.den


def _grads(b: _Bin, t: _Local, w_s: torch.Tensor | None, w_l: torch.Tensor | None) -> torch.Tensor:
    """``w_s dS/dp + w_l d(log S')/dp`` at fixed x for the knot values p = (x0, x1), (y0, y1), (d0, d1):
    [..., F, 3, 2M], the layout of :func:`_bin`'s gather.

    With S = y0 + (y1 - y0) R, R = (s z^2 + d0 z(1-z)) / den, s = (y1 - y0)/(x1 - x0), z = (x - x0)/(x1 - x0)
    and L = log S' = 2 log s + log nj - 2 log den:

        dS/dx0 = s (s R_s - (1-z) R_z)     dS/dx1 = -s (s R_s + z R_z)     dS/dy0 = 1 - R - s R_s
        dS/dy1 = R + s R_s     dS/dd0 = (y1 - y0) z(1-z)(1 - R) / den     dS/dd1 = -(y1 - y0) z(1-z) R / den
        dL/dx0 = (s L_s - (1-z) L_z) / (x1 - x0)     dL/dx1 = -(s L_s + z L_z) / (x1 - x0)
        dL/dy0 = -L_s / (x1 - x0)     dL/dy1 = L_s / (x1 - x0)     dL/dd0 = (1-z)^2 / nj - 2 z(1-z) / den
        dL/dd1 = z^2 / nj - 2 z(1-z) / den

    where R_s, R_z, L_s, L_z are partial derivatives in (s, d0, d1, z).
    """
    s, z, omz, zz = b.s, t.z, t.omz, t.zz
    parts: list[torch.Tensor] = []
    if w_s is not None:
        r = (s * z * z + b.d0 * zz) / t.den
        r_z = (2 * s * z + (b.d0 - r * t.lam) * (1 - 2 * z)) / t.den
        srs = s * (z * z - r * (1 - 2 * zz)) / t.den
        wd = w_s * (b.y1 - b.y0) * zz / t.den
        parts = [w_s * (s * (srs - omz * r_z)), -w_s * (s * (srs + z * r_z)), w_s * (1 - r - srs), w_s * (r + srs),
                 wd * (1 - r), -wd * r]
    if w_l is not None:
        l_s = 2 / s + 2 * zz / t.nj - 2 * (1 - 2 * zz) / t.den
        l_z = _dlogjac_dz(b, t)
        c = w_l / (b.x1 - b.x0)
        two = 2 * zz / t.den
        more = [c * (s * l_s - omz * l_z), -c * (s * l_s + z * l_z), -c * l_s, c * l_s,
                w_l * (omz**2 / t.nj - two), w_l * (z * z / t.nj - two)]
        parts = [p + q for p, q in zip(parts, more, strict=True)] if parts else more
    return torch.cat(parts, dim=-1).unflatten(-1, (3, -1))


def _scatter(grads: torch.Tensor, b: _Bin, shape: torch.Size) -> torch.Tensor:
    """Knot gradients [*shape] from per-value ones ([..., F, 3, 2M], :func:`_grads`): gather's reverse."""
    return grads.new_zeros(shape).scatter_add_(-1, b.both.unsqueeze(-2).expand(grads.shape), grads)


def rqs_forward_backward(
    b: _Bin, z: torch.Tensor, g_y: torch.Tensor | None, g_l: torch.Tensor | None, knots_shape: torch.Size | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of (y, log S') = :func:`rqs_forward` given g_y = dL/dy and g_l = dL/dlog S' (``None``: 0):
    ``(dL/dx, dL/dknots or None when knots_shape is None)``.  Outside the knots y = x and log S' = 0."""
    t = _local(b, z)
    g_x = torch.zeros_like(z) if g_y is None else g_y
    inside_x = g_x * t.jac if g_y is not None else g_x
    if g_l is not None:
        inside_x = inside_x + g_l * _dlogjac_dz(b, t) / (b.x1 - b.x0)
    g_x = torch.where(b.inside, inside_x, g_x)
    if knots_shape is None:
        return g_x, None
    w_s = None if g_y is None else torch.where(b.inside, g_y, 0.0)
    w_l = None if g_l is None else torch.where(b.inside, g_l, 0.0)
    return g_x, _scatter(_grads(b, t, w_s, w_l), b, knots_shape)


def rqs_inverse_backward(
    b: _Bin, z: torch.Tensor, g_x: torch.Tensor | None, g_l: torch.Tensor | None, knots_shape: torch.Size | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of (x, log S'(x)) = :func:`rqs_inverse` (``b``, ``z`` of its bin) given g_x = dL/dx and
    g_l = dL/dlog S' (``None``: 0): ``(dL/dy, dL/dknots or None when knots_shape is None)``.

    Implicit-function derivatives: x = S^{-1}(y) has dx/dy = 1 / S'(x) and, for a knot value p,
    dx/dp = -(dS/dp at fixed x) / S'(x); log S'(x) depends on p directly and through x.  Outside the knots
    x = y: dL/dy = g_x, no knot gradient.
    """
    t = _local(b, z)
    h = torch.zeros_like(z) if g_x is None else g_x
    if g_l is not None:
        h = h + g_l * _dlogjac_dz(b, t) / (b.x1 - b.x0)  # dL/dx with log S' a function of x
    u = h / t.jac
    g_y = torch.where(b.inside, u, torch.zeros_like(z) if g_x is None else g_x)
    if knots_shape is None:
        return g_y, None
    w_l = None if g_l is None else torch.where(b.inside, g_l, 0.0)
    return g_y, _scatter(_grads(b, t, torch.where(b.inside, -u, 0.0), w_l), b, knots_shape)


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
    phi_a: torch.Tensor  # block A's unconstrained spline parameters (the last layer's bias), [1, F_A, 3K - 1]
    knots_a: Knots  # their knots, [F_A, 3, K + 1]


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
            phi_a=phi_a.unsqueeze(0),
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

        Both blocks in one spline evaluation (the input of both is known): block A's parameters, the
        bias, broadcast over the batch next to block B's, as zuko's conditioner computes them.
        """
        phi = self.conditioner(x[:, self.a], plan)
        phi_a = plan.phi_a.expand(x.shape[0], -1, -1)
        knots = self._knots(self._join(phi_a, phi, dim=1), first_order)
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
