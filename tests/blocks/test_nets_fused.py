"""benchbed.blocks.nets and benchbed.blocks.fused: builder shapes and exact MLP value-and-gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbed.blocks.fused import fused_log_density, is_dense_stack, jet
from benchbed.blocks.nets import (
    Reshape,
    build_encoder,
    build_generator,
    conv_encoder,
    conv_generator,
    mlp,
    resolve_arch,
)
from benchbed.contracts import DatasetInfo

DIGITS = DatasetInfo(name="digits", shape=(1, 8, 8), kind="image")
MNIST = DatasetInfo(name="mnist", shape=(1, 28, 28), kind="image")
VEC = DatasetInfo(name="vec", shape=(2,), kind="vector")


def test_mlp_layers_and_shapes() -> None:
    net = mlp([5, 7, 3])
    assert [type(m) for m in net] == [nn.Linear, nn.LeakyReLU, nn.Linear]
    assert net[1].negative_slope == 0.2
    assert net(torch.randn(4, 5)).shape == (4, 3)
    relu = mlp([5, 7, 7, 3], nn.ReLU, nn.Sigmoid(), dropout=(0.5, 0.0, 0.1))
    assert [type(m) for m in relu] == [
        nn.Dropout, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.Sigmoid,
    ]
    out = relu.eval()(torch.randn(4, 5))
    assert out.shape == (4, 3) and bool(((out > 0) & (out < 1)).all())


def test_resolve_arch() -> None:
    assert resolve_arch(DIGITS, "auto", owner="t") == "mlp"
    assert resolve_arch(MNIST, "auto", owner="t") == "conv"
    assert resolve_arch(VEC, "mlp", owner="t") == "mlp"
    with pytest.raises(ValueError, match="arch='conv'"):
        resolve_arch(DIGITS, "conv", owner="t")
    with pytest.raises(ValueError, match="must be one of"):
        resolve_arch(VEC, "resnet", owner="t")


@pytest.mark.parametrize("info", [DIGITS, MNIST, VEC])
def test_generators_and_encoders_have_the_data_shape(info: DatasetInfo) -> None:
    arch = resolve_arch(info, "auto", owner="t")
    g = build_generator(info, 3, arch, (16,), ngf=4)
    x = g(torch.randn(2, 3))
    assert x.shape == (2, *info.shape)
    if info.kind == "image":
        assert bool((x.abs() <= 1).all())  # tanh output: the [-1, 1] working scale
    assert build_encoder(info, 6, arch, (16,), ndf=4)(x).shape == (2, 6)


def test_conv_builders_and_reshape() -> None:
    assert conv_generator(MNIST, 3, 4, act=nn.ReLU, out=nn.Sigmoid())(torch.randn(2, 3)).shape == (2, 1, 28, 28)
    assert conv_encoder(MNIST, 5, 4)(torch.rand(2, 1, 28, 28)).shape == (2, 5)
    assert Reshape(2, 3)(torch.randn(4, 6)).shape == (4, 2, 3)


def _random_mlp(act: type[nn.Module]) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(mlp([4, 16, 16, 1], act), Reshape(1))


@pytest.mark.parametrize("act", [nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh])
def test_fused_value_and_gradient_equal_autograd(act: type[nn.Module]) -> None:
    """log p(z) = f(z) - |z|^2 / 2 on a random MLP f: the tape-free jet equals autograd."""
    f = _random_mlp(act)
    assert is_dense_stack(f)
    f_jet = jet(f)

    def fn(z: torch.Tensor, need_value: bool, need_grad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        out, tape = f_jet.forward(z, need_grad, need_value)
        value = out.reshape(-1) - 0.5 * (z * z).sum(1) if need_value and out is not None else None
        grad = f_jet.vjp_sum(tape) - z if need_grad else None
        return value, grad

    z = torch.randn(9, 4)
    leaf = z.clone().requires_grad_(True)
    want = f(leaf).reshape(-1) - 0.5 * (leaf * leaf).sum(1)
    (want_grad,) = torch.autograd.grad(want.sum(), leaf)
    density = fused_log_density(fn)
    value, grad = density.value_and_grad(z)
    assert value is not None
    torch.testing.assert_close(value, want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-6)
    none, grad_only = density.value_and_grad(z, value=False)
    assert none is None
    torch.testing.assert_close(grad_only, want_grad, rtol=1e-5, atol=1e-6)
    # The autograd path: one node that hands back the precomputed gradient.
    leaf2 = z.clone().requires_grad_(True)
    (auto_grad,) = torch.autograd.grad(density(leaf2).sum(), leaf2)
    torch.testing.assert_close(auto_grad, want_grad, rtol=1e-5, atol=1e-6)


def test_jet_vjp_of_a_vector_output_and_the_autograd_fallback() -> None:
    torch.manual_seed(1)
    dense = mlp([3, 8, 5], nn.GELU, nn.Tanh())
    conv = conv_generator(MNIST, 3, 2)
    assert is_dense_stack(dense) and not is_dense_stack(conv)
    for module in (dense, conv):
        _assert_jet_matches_autograd(module, torch.randn(4, 3))


def _assert_jet_matches_autograd(module: nn.Module, z: torch.Tensor) -> None:
    """``jet(module)``'s forward value and VJP (random cotangent) equal autograd's."""
    out, tape = jet(module).forward(z, True)
    leaf = z.clone().requires_grad_(True)
    ref = module(leaf)
    v = torch.randn_like(ref)
    (want,) = torch.autograd.grad(ref, leaf, grad_outputs=v)
    assert out is not None
    torch.testing.assert_close(out, ref.detach())
    torch.testing.assert_close(jet(module).vjp(tape, v), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act", [nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh])
def test_jet_of_an_energy_head_equals_autograd(act: type[nn.Module]) -> None:
    """A final Linear to one output (an energy head): the value is the module's own (same kernels),
    and ``vjp_sum`` starts from the head's weight row whether or not the forward pass computed the
    head's product (``need_out``); a forward pass that asks for neither value nor gradient does nothing."""
    torch.manual_seed(0)
    f = mlp([5, 16, 16, 1], act)
    f_jet = jet(f)
    z = torch.randn(7, 5)
    leaf = z.clone().requires_grad_(True)
    want = f(leaf)
    (want_grad,) = torch.autograd.grad(want.sum(), leaf)
    for need_out in (True, False):
        out, tape = f_jet.forward(z, True, need_out)
        if need_out:
            assert out is not None and torch.equal(out, want.detach())
        else:
            assert out is None
        torch.testing.assert_close(f_jet.vjp_sum(tape), want_grad, rtol=1e-5, atol=1e-6)
    out, _ = f_jet.forward(z, False)
    assert out is not None and torch.equal(out, want.detach())
    assert f_jet.forward(z, False, False)[0] is None
    _, body_tape = f_jet.forward(z, True, False)
    with pytest.raises(ValueError, match="full forward pass"):
        f_jet.vjp(body_tape, torch.ones(7, 1))


def test_jet_of_linear_layers_on_batched_matrices() -> None:
    """Inputs with more than two dimensions take F.linear and matmul: the same values and VJP."""
    torch.manual_seed(2)
    module = nn.Sequential(nn.Linear(3, 6), nn.GELU(), nn.Linear(6, 4, bias=False), nn.Tanh())
    _assert_jet_matches_autograd(module, torch.randn(2, 5, 3))


def test_jet_follows_weight_updates_between_calls() -> None:
    """A jet stays valid across optimiser steps and loads: its cached head rows (GELU energy head)
    follow every in-place update of the weights."""
    torch.manual_seed(3)
    f = mlp([4, 8, 8, 1], nn.GELU)
    f_jet = jet(f)
    z = torch.randn(5, 4)

    def autograd_grad() -> torch.Tensor:
        leaf = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(leaf).sum(), leaf)
        return g

    opt = torch.optim.SGD(f.parameters(), lr=0.5)
    for _ in range(3):
        _, tape = f_jet.forward(z, True, False)
        torch.testing.assert_close(f_jet.vjp_sum(tape), autograd_grad(), rtol=1e-5, atol=1e-6)
        opt.zero_grad()
        f(z).pow(2).sum().backward()
        opt.step()
    f.load_state_dict(mlp([4, 8, 8, 1], nn.GELU).state_dict())
    _, tape = f_jet.forward(z, True, False)
    torch.testing.assert_close(f_jet.vjp_sum(tape), autograd_grad(), rtol=1e-5, atol=1e-6)
