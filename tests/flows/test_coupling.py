"""benchbed_flows.coupling: the block-wise evaluation of zuko's coupling NSF is zuko's function, and its
hand-written derivatives are the derivatives of that function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import zuko

from benchbed.contracts import DataBundle
from benchbed_flows.coupling import CouplingNSF, make_knots, rqs_forward, rqs_inverse
from benchbed_flows.density import FlowDensity


def _flow(dim: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> zuko.flows.NSF:
    """A coupling NSF as FlowDensity builds it, its parameters moved off the initialisation (biases nonzero)."""
    torch.manual_seed(seed)
    flow = zuko.flows.NSF(dim, transforms=3, bins=6, hidden_features=(32, 32), passes=2, randperm=False).to(dtype)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("dim", [2, 3, 16])
def test_values_equal_zuko(dim: int) -> None:
    """Density, both directions and the inverse bit for bit; the draws' log-density to rounding (its log-det
    is taken in the inverse's bin); the same random numbers for the draws."""
    flow = _flow(dim)
    fast = CouplingNSF(flow)
    y = 2.5 * torch.randn(200, dim)  # some values beyond the splines' [-5, 5]: the identity there
    with torch.no_grad():
        plan = fast.plan()
        assert torch.equal(fast.log_prob(y, plan), flow().log_prob(y))
        assert torch.equal(fast.forward(y, plan)[0], flow().transform(y))
        assert torch.equal(fast.inverse(y, plan), flow().transform.inv(y))
        torch.manual_seed(1)
        ref_y, ref_lp = flow().rsample_and_log_prob((100,))
        torch.manual_seed(1)
        got_y, got_lp = fast.rsample_and_log_prob(100, plan)
    assert torch.equal(got_y, ref_y)
    torch.testing.assert_close(got_lp, ref_lp, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("first_order", [False, True])
def test_parameter_gradients_equal_zuko(first_order: bool) -> None:
    """A loss using the density and reparameterised draws: zuko's parameter gradients, to rounding."""
    flow = _flow(6)
    fast = CouplingNSF(flow)
    params = list(flow.parameters())
    y = 2.0 * torch.randn(100, 6)
    torch.manual_seed(2)
    dist = flow()
    ref = torch.autograd.grad(dist.log_prob(y).mean() + dist.rsample_and_log_prob((50,))[1].mean(), params)
    torch.manual_seed(2)
    plan = fast.plan(first_order=first_order)
    loss = fast.log_prob(y, plan).mean() + fast.rsample_and_log_prob(50, plan)[1].mean()
    got = torch.autograd.grad(loss, params, allow_unused=True)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(torch.zeros_like(r) if g is None else g, r, rtol=1e-4, atol=1e-5)


def _knots(p: torch.Tensor) -> torch.Tensor:
    return make_knots(p, 6, bound=5.0, slope=1e-3, first_order=True)


#: The first-order nodes, each output alone and both: (name, (values, params) -> outputs).
_NODES: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], Any]]] = [
    ("forward", lambda v, p: rqs_forward(v, _knots(p), first_order=True)),
    ("forward y", lambda v, p: rqs_forward(v, _knots(p), first_order=True)[0]),
    ("forward log-det", lambda v, p: rqs_forward(v, _knots(p), first_order=True)[1]),
    ("inverse", lambda v, p: rqs_inverse(v, _knots(p), ladj=False, first_order=True)[0]),
    ("inverse with log-det", lambda v, p: rqs_inverse(v, _knots(p), ladj=True, first_order=True)),
    ("inverse log-det", lambda v, p: rqs_inverse(v, _knots(p), ladj=True, first_order=True)[1]),
]


@pytest.mark.parametrize(("name", "fn"), _NODES, ids=[n for n, _ in _NODES])
def test_hand_written_spline_derivatives_pass_gradcheck(name: str, fn: Callable[..., Any]) -> None:
    """The first-order nodes (knots and splines) in double against finite differences, with values inside
    and beyond the knots."""
    torch.manual_seed(0)
    params = torch.randn(3, 4, 17, dtype=torch.double, requires_grad=True)  # K = 6 bins
    x = (3.0 * torch.randn(3, 4, 5, dtype=torch.double)).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x, params)), name


@pytest.mark.parametrize("dim", [2, 5])
def test_inverse_vjp_equals_autograd(dim: int) -> None:
    """The tape-free reverse pass through T(z) (the flow EBM's Langevin gradient) is autograd's, in double."""
    flow = _flow(dim, torch.double)
    fast = CouplingNSF(flow)
    with torch.no_grad():
        plan = fast.plan()
    z = (2.0 * torch.randn(64, dim, dtype=torch.double)).requires_grad_(True)
    y_ref = flow().transform.inv(z)
    v = torch.randn_like(y_ref)
    (g_ref,) = torch.autograd.grad(y_ref, z, v)
    y, vjp = fast.inverse_and_vjp(z.detach(), plan)
    torch.testing.assert_close(y, y_ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(vjp(v), g_ref, rtol=1e-9, atol=1e-10)


def test_flows_it_does_not_cover_keep_zuko(digits: DataBundle) -> None:
    """Fully autoregressive flows (and ``fast=False``) keep zuko's own evaluation."""
    common = {"transforms": 1, "hidden": (8,), "bins": 4}
    assert FlowDensity(digits.info, digits.train, autoregressive=True, **common).coupling is None
    assert FlowDensity(digits.info, digits.train, autoregressive=False, fast=False, **common).coupling is None
    assert FlowDensity(digits.info, digits.train, autoregressive=False, **common).coupling is not None
