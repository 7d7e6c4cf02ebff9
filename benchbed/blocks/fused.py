"""Latent log-densities whose gradient costs one tape-free pass: fewer ops per Langevin step.

A short-run chain on a small MLP spends much of its time in autograd bookkeeping rather than
arithmetic (one Langevin step of a digits-sized latent EBM is about twenty small matmuls).
:class:`FusedLogDensity` wraps a :data:`GradFn`
``fn(z, need_value, need_grad) -> (log p [B] | None, grad [B, *Z] | None)`` as a log-density that
offers both paths of :class:`benchbed.contracts.GradLogDensity`:

* ``value_and_grad(z, value=...)`` calls ``fn`` directly: no tape at all, and no value work on the
  steps that only need the gradient (the Langevin and HMC samplers use this);
* calling it gives an ordinary autograd log-density whose graph is a single node holding the
  precomputed gradient, so a sampler that calls ``torch.autograd.grad(log_density(z).sum(), z)``
  gets the exact gradient for the price of ``fn``.

:func:`jet` gives a module's forward pass plus its vector-Jacobian product with respect to its
input: by hand for ``nn.Sequential`` stacks of Linear and point-wise activations (one matmul and one
fused aten backward kernel per layer, nothing recorded), and through autograd for anything else
(e.g. a conv generator, whose arithmetic dominates anyway).  The results are not differentiable a
second time (no Hessians): models that need double backward (SRI's step-size learning) must use
plain closures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from benchbed.blocks.nets import Reshape

__all__ = ["FusedLogDensity", "GradFn", "fused_log_density", "is_dense_stack", "jet"]

#: ``(z, need_value, need_grad) -> (log p [B] or None, grad [B, *Z] or None)``.
GradFn = Callable[[torch.Tensor, bool, bool], tuple[torch.Tensor | None, torch.Tensor | None]]

_POINTWISE = (nn.LeakyReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.Identity)


class _Fused(torch.autograd.Function):
    """Value of ``fn`` in forward; the saved gradient, scaled per chain, in backward."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, fn: GradFn) -> torch.Tensor:
        need = bool(ctx.needs_input_grad[0])
        value, grad = fn(z.detach(), True, need)
        assert value is not None  # fn computes the value whenever need_value is True
        if need:
            ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (grad,) = ctx.saved_tensors
        return g_out.reshape((-1,) + (1,) * (grad.dim() - 1)) * grad, None


class FusedLogDensity:
    """A log-density ``z -> [B]`` computed by ``fn``, with both paths of ``GradLogDensity``."""

    def __init__(self, fn: GradFn) -> None:
        self.fn = fn

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return _Fused.apply(z, self.fn)

    def value_and_grad(self, z: torch.Tensor, *, value: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(log p(z) or None, grad_z log p(z))`` in one tape-free pass of ``fn``.

        Under ``no_grad``: nothing is recorded even when the caller left the weights trainable
        (an autograd-based jet re-enables gradients for its own local graph).
        """
        with torch.no_grad():
            out, grad = self.fn(z.detach(), value, True)
        assert grad is not None  # fn computes the gradient whenever need_grad is True
        return out, grad


def fused_log_density(fn: GradFn) -> FusedLogDensity:
    """A log-density ``z -> [B]`` whose gradient is the one ``fn`` returns (see the module docstring)."""
    return FusedLogDensity(fn)


def _flat_layers(module: nn.Module) -> list[nn.Module] | None:
    """The leaves of nested ``nn.Sequential`` if all are Linear/point-wise/Reshape, else ``None``."""
    if not isinstance(module, nn.Sequential):
        return [module] if isinstance(module, (nn.Linear, Reshape, nn.Flatten, *_POINTWISE)) else None
    out: list[nn.Module] = []
    for child in module:
        leaves = _flat_layers(child)
        if leaves is None:
            return None
        out += leaves
    return out


Forward = Callable[[torch.Tensor], torch.Tensor]
Backward = Callable[[torch.Tensor, Any], torch.Tensor]  # (v, saved) -> v

# What a layer's input-VJP reads from the forward pass (the rest is not kept on the tape).
_NOTHING, _INPUT, _OUTPUT = 0, 1, 2


def _linear_pair(layer: nn.Linear) -> tuple[Forward, Backward, int]:
    """A Linear ``h W^T + b`` as ``addmm``/``mm`` for 2-d inputs (what ``F.linear`` runs for them, minus
    its dispatch overhead); its input-VJP ``v W`` needs nothing from the forward pass."""
    w, b = layer.weight, layer.bias
    if b is None:

        def fwd(h: torch.Tensor) -> torch.Tensor:
            return torch.mm(h, w.t()) if h.dim() == 2 else F.linear(h, w)

    else:

        def fwd(h: torch.Tensor) -> torch.Tensor:
            return torch.addmm(b, h, w.t()) if h.dim() == 2 else F.linear(h, w, b)

    def bwd(v: torch.Tensor, saved: Any) -> torch.Tensor:
        return torch.mm(v, w) if v.dim() == 2 else v @ w  # d(h W^T + b)/dh = W

    return fwd, bwd, _NOTHING


def _layer_pair(layer: nn.Module) -> tuple[Forward, Backward, int] | None:
    """(forward, input-VJP, what the VJP reads) of one supported layer, as direct functional/aten calls.

    Calling the functions directly skips ``nn.Module.__call__`` and the isinstance chain on every
    Langevin step; ``None`` drops a no-op layer.  The VJPs are the aten kernels autograd runs.
    """
    aten = torch.ops.aten
    if isinstance(layer, nn.Linear):
        return _linear_pair(layer)
    if isinstance(layer, nn.LeakyReLU):
        slope, lrelu_bwd = layer.negative_slope, aten.leaky_relu_backward.default
        return (lambda h: F.leaky_relu(h, slope)), (lambda v, i: lrelu_bwd(v, i, slope, False)), _INPUT
    if isinstance(layer, nn.GELU):
        approx, gelu_bwd = layer.approximate, aten.gelu_backward.default
        return (lambda h: F.gelu(h, approximate=approx)), (lambda v, i: gelu_bwd(v, i, approximate=approx)), _INPUT
    if isinstance(layer, nn.Tanh):
        tanh_bwd = aten.tanh_backward.default
        return torch.tanh, tanh_bwd, _OUTPUT
    if isinstance(layer, nn.SiLU):
        return F.silu, aten.silu_backward.default, _INPUT
    if isinstance(layer, (Reshape, nn.Flatten)):
        return layer.forward, (lambda v, i: v.reshape(i.shape)), _INPUT
    return None  # nn.Identity


class _MLPJet:
    """Forward with a tape of what each layer's VJP reads, and a hand-written input VJP.

    For layers ``h_{k+1} = phi_k(h_k)`` the VJP is ``v_k = v_{k+1} d phi_k / d h_k`` from the last
    layer down (``v W`` for a Linear ``h W^T + b``, ``v * phi'(h)`` for a point-wise ``phi``).  The
    tape keeps per layer only what its VJP reads (nothing for a Linear, the input or the output of a
    point-wise layer), and a forward pass that feeds only a VJP computes only what that VJP reads.
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        kept = [(layer, t) for layer, t in zip(layers, map(_layer_pair, layers), strict=True) if t is not None]
        triples = [t for _, t in kept]
        self.forwards = [(fwd, saves) for fwd, _, saves in triples]
        self.backwards = [bwd for _, bwd, _ in reversed(triples)]
        last = layers[-1] if layers else None
        # A final Linear to one output (an energy head): the VJP of out.sum() starts at its weight row.
        head = last.weight if isinstance(last, nn.Linear) and last.out_features == 1 else None
        self.scalar_head = head if len(triples) >= 2 else None
        # Without the head, the forward pass stops at the input of the body's last layer when that
        # layer's VJP reads only its input (e.g. GELU before the head: its output is never used).
        body: list[tuple[Forward | None, int]] = list(self.forwards[:-1])
        if body and body[-1][1] == _INPUT:
            body[-1] = (None, _INPUT)
        self.body_forwards = body
        # GELU's backward kernel on the CPU runs faster on a contiguous gradient than on the expanded
        # head row, with the same values (SiLU's gives other last bits: it keeps the expanded row).
        self._contiguous_head = len(kept) >= 2 and isinstance(kept[-2][0], nn.GELU)
        self._head_key: tuple[Any, ...] | None = None
        self._head_rows_cache = torch.empty(0)

    def _head_rows(self, head: torch.Tensor, b: int) -> torch.Tensor:
        """The head's weight row for ``b`` chains: an expanded view, or before a GELU on the CPU (its
        oneDNN kernel) a contiguous [b, H] copy, kept while the weight is unchanged.

        "Unchanged" is read from the weight's version counter and storage, which every in-place
        operation on it (an optimiser step, ``load_state_dict``) and every re-assignment (``.to``)
        update; like autograd's saved tensors, a write through ``.data`` goes unseen.
        """
        if not self._contiguous_head or head.device.type != "cpu":
            return head.expand(b, -1)
        key = (b, head._version, head.data_ptr(), head.dtype)
        if key != self._head_key:
            self._head_rows_cache = head.detach().expand(b, -1).contiguous()
            self._head_key = key
        return self._head_rows_cache

    def forward(self, h: torch.Tensor, need_grad: bool, need_out: bool = True) -> tuple[torch.Tensor | None, Any]:
        """``(output or None, tape)``.  ``need_out=False`` skips a scalar head's product: the input
        VJP of ``out.sum()`` needs only its weight row (:meth:`vjp_sum`)."""
        skip_head = not need_out and self.scalar_head is not None
        if not need_grad:
            if skip_head:
                return None, None  # nothing asked for
            for f, _ in self.forwards:
                h = f(h)
            return h, None
        program: Sequence[tuple[Forward | None, int]] = self.body_forwards if skip_head else self.forwards
        tape: list[Any] = [h]  # [input, one entry per layer run, output (full passes only)]
        for fwd, saves in program:
            if fwd is None:  # the body's last layer: its VJP reads only this input
                tape.append(h)
                break
            out = fwd(h)
            tape.append(h if saves == _INPUT else out if saves == _OUTPUT else None)
            h = out
        if skip_head:
            return None, tape
        tape.append(h)
        return h, tape

    def vjp(self, tape: list[Any], v: torch.Tensor) -> torch.Tensor:
        """``v^T d out / d in``: [B, *out] -> [B, *in] (``tape`` from :meth:`forward` with ``need_grad``)."""
        n = len(self.backwards)
        if len(tape) != n + 2:
            raise ValueError("jet.vjp needs the tape of a full forward pass (need_grad=True, need_out=True)")
        for bwd, saved in zip(self.backwards, tape[n:0:-1]):  # noqa: B905 (lengths checked)
            v = bwd(v, saved)
        return v

    def vjp_sum(self, tape: list[Any]) -> torch.Tensor:
        """Gradient of ``out.sum()`` with respect to the input (per example, since rows are independent).

        ``tape`` may or may not hold the scalar head's entry (see ``need_out`` of :meth:`forward`).
        """
        if self.scalar_head is None:
            return self.vjp(tape, torch.ones_like(tape[-1]))
        n = len(self.backwards)
        v = self._head_rows(self.scalar_head, tape[0].shape[0])  # skips a [B,1] x [1,H] product
        for bwd, saved in zip(self.backwards[1:], tape[n - 1 : 0 : -1]):  # noqa: B905 (one entry per body layer)
            v = bwd(v, saved)
        return v


class _AutogradJet:
    """Fallback for any module: forward under a local graph, VJP by ``torch.autograd.grad``."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def forward(self, h: torch.Tensor, need_grad: bool, need_out: bool = True) -> tuple[torch.Tensor, Any]:
        """``(output, tape)``; ``need_out`` is accepted for symmetry with the hand-written jet."""
        if not need_grad:
            return self.module(h), None
        with torch.enable_grad():
            leaf = h.detach().requires_grad_(True)
            out = self.module(leaf)
        return out.detach(), (leaf, out)

    def vjp(self, tape: Any, v: torch.Tensor) -> torch.Tensor:
        """``v^T d out / d in`` through autograd: [B, *out] -> [B, *in]."""
        leaf, out = tape
        (g,) = torch.autograd.grad(out, leaf, grad_outputs=v)
        return g

    def vjp_sum(self, tape: Any) -> torch.Tensor:
        """Gradient of ``out.sum()`` with respect to the input."""
        return self.vjp(tape, torch.ones_like(tape[1]))


def is_dense_stack(module: nn.Module) -> bool:
    """Whether ``module`` is a (nested) Sequential of Linear/point-wise layers: the hand-written path."""
    return _flat_layers(module) is not None


def jet(module: nn.Module) -> _MLPJet | _AutogradJet:
    """Forward + input-VJP for ``module``: hand-written for MLP stacks, autograd otherwise.

    The result has ``forward(h, need_grad, need_out=True) -> (out, tape)``,
    ``vjp(tape, v) -> v^T d out / d h`` and ``vjp_sum(tape) -> d out.sum() / d h`` (per example).
    It holds the module's parameter tensors, which optimisers update in place, so it stays valid
    across optimiser steps (not across re-assigned parameters).
    """
    layers = _flat_layers(module)
    return _MLPJet(layers) if layers is not None else _AutogradJet(module)
