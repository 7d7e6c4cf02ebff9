"""Maximum mean discrepancy: multi-scale Gaussian kernels, the median heuristic, and MMD^2 estimators.

**Kernel.**  A sum of Gaussian kernels over scales (the GMMN kernel, Li et al. 2015, §3)::

    k(x, y) = sum_q exp(-||x - y||^2 / (2 v_q))

where ``v_q`` is a **variance** (squared bandwidth), not a bandwidth; all scale weights are 1.
Examples are flattened: ``[N, *D] -> [N, F]``.

**Estimators.**  For X = {x_i}_{i<n} ~ P, Y = {y_j}_{j<m} ~ Q (Gretton et al. 2012, eqs. 3 and 5)::

    MMD_b^2 = 1/n^2 sum_{i,i'} k(x_i,x_i') + 1/m^2 sum_{j,j'} k(y_j,y_j') - 2/(nm) sum_{i,j} k(x_i,y_j)
    MMD_u^2 = 1/(n(n-1)) sum_{i!=i'} k(x_i,x_i') + 1/(m(m-1)) sum_{j!=j'} k(y_j,y_j') - 2/(nm) sum_{i,j} k(x_i,y_j)

the biased V-statistic (diagonal included) and the unbiased U-statistic (diagonal removed; it can be
slightly negative).  A **joint** MMD (Long et al. 2017, JMMD) compares tuples ``(a, b, ...)`` with the
product kernel ``k((a,b),(a',b')) = k_a(a,a') k_b(b,b')``: :func:`joint_mmd2` takes one tensor and
one kernel per view; the Gram matrix is the elementwise product of the views' Gram matrices.

**Median heuristic.**  ``v = m * median_{i<j} ||x_i - x_j||^2 / 2`` for multipliers ``m``: with
``m = 1`` the kernel is ``exp(-1)`` at the median distance.

**Memory.**  The dense path builds [n, n], [m, m] and [n, m] blocks.  With ``chunk_size=c`` the
sums are accumulated over c x c blocks (only blocks on or above the diagonal of the self terms are
computed, the off-diagonal ones counted twice), so the extra memory is a few c^2 values whatever n
and m are.  When gradients are needed each block is recomputed in the backward pass (activation
checkpointing), so the autograd graph does not hold n^2 values either.  Block sums are accumulated
in float64; results have the dtype of the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "MEDIAN_MULTIPLIERS",
    "KernelLike",
    "MultiScaleGaussian",
    "as_kernel",
    "flatten",
    "joint_mmd2",
    "kernel_sum",
    "median_heuristic_variances",
    "median_sq_dist",
    "mmd2",
    "sq_dists",
]

#: Default multipliers of the median-heuristic base variance: factors of 4 from 1/256 to 4, so that
#: both fine (within-mode: a mode of std 0.1 needs v ~ 0.01-0.06) and coarse (between-mode)
#: structure give gradient.
MEDIAN_MULTIPLIERS: tuple[float, ...] = (1 / 256, 1 / 64, 1 / 16, 1 / 4, 1.0, 4.0)


def flatten(x: torch.Tensor) -> torch.Tensor:
    """``[N, *D] -> [N, prod(D)]``; a ``[N]`` tensor becomes ``[N, 1]``."""
    return x.reshape(x.shape[0], -1)


def _tracked(*tensors: torch.Tensor) -> bool:
    """Whether autograd records operations on ``tensors`` (then no in-place updates are used)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def sq_dists(a: torch.Tensor, b: torch.Tensor, *, zero_diagonal: bool = False) -> torch.Tensor:
    """Squared Euclidean distances [N, M] between the rows of ``a`` [N, F] and ``b`` [M, F].

    Computed as ``|a|^2 + |b|^2 - 2 a b^T`` (one matmul); the tiny negative numbers this can round
    to are clamped to 0.  ``zero_diagonal`` (for a block of a set against itself, N == M) sets the
    diagonal to exactly 0, so that the diagonal kernel value is exact and the U-statistic can remove
    it analytically.
    """
    aa = (a * a).sum(dim=1, keepdim=True)
    bb = (b * b).sum(dim=1, keepdim=True)
    d2 = torch.addmm(aa + bb.T, a, b.T, beta=1.0, alpha=-2.0)
    if not _tracked(a, b):  # evaluation: update in place, no extra N x M temporaries
        d2.clamp_min_(0.0)
        if zero_diagonal:
            d2.fill_diagonal_(0.0)
        return d2
    d2 = d2.clamp_min(0.0)
    if zero_diagonal:
        eye = torch.eye(d2.shape[0], dtype=torch.bool, device=d2.device)
        d2 = d2.masked_fill(eye, 0.0)
    return d2


@dataclass(frozen=True)
class MultiScaleGaussian:
    """``k(d^2) = sum_q exp(-d^2 / (2 v_q))`` with unit weights.

    Attributes:
        variances: the ``v_q``, each finite and > 0 (squared bandwidths, not bandwidths).

    Raises:
        ValueError: (on construction) no variance, or one that is not finite and > 0.
    """

    variances: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.variances) == 0:
            raise ValueError("MultiScaleGaussian: 'variances' is empty; give at least one variance")
        bad = [v for v in self.variances if not (isinstance(v, int | float) and math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(f"MultiScaleGaussian: 'variances' must be finite and > 0, got {bad}")

    @property
    def diagonal(self) -> float:
        """``k(x, x)``: 1 per scale."""
        return float(len(self.variances))

    def __call__(self, d2: torch.Tensor) -> torch.Tensor:
        """Kernel values for squared distances ``d2`` (any shape; same shape out)."""
        out = torch.exp(d2 * (-0.5 / self.variances[0]))
        if _tracked(d2):
            for v in self.variances[1:]:
                out = out + torch.exp(d2 * (-0.5 / v))
            return out
        # Evaluation: one scratch buffer reused for every scale (peak 3 blocks: d2, out, scratch).
        scratch = torch.empty_like(d2)
        for v in self.variances[1:]:
            torch.mul(d2, -0.5 / v, out=scratch).exp_()
            out.add_(scratch)
        return out


#: A kernel, a sequence of variances, or a single variance (one scale).
KernelLike = Sequence[float] | float | MultiScaleGaussian


def as_kernel(variances: KernelLike) -> MultiScaleGaussian:
    """Accept either a kernel or a sequence of variances (a single float is one scale)."""
    if isinstance(variances, MultiScaleGaussian):
        return variances
    if isinstance(variances, int | float):
        return MultiScaleGaussian((float(variances),))
    return MultiScaleGaussian(tuple(float(v) for v in variances))


def median_sq_dist(x: torch.Tensor, *, max_points: int = 1000, seed: int = 0) -> float:
    """Median of the pairwise squared distances (i < j) among at most ``max_points`` rows of ``x`` [N, *D].

    The subset is drawn with a generator seeded by ``seed``, so the value is deterministic.  The
    distances are computed in float64.

    Raises:
        ValueError: fewer than two examples, or a median of 0 (mostly identical examples).
    """
    x = flatten(x).detach()
    if x.shape[0] < 2:
        raise ValueError(f"median_sq_dist needs at least 2 examples, got {x.shape[0]}")
    if x.shape[0] > max_points:
        gen = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(x.shape[0], generator=gen)[:max_points].to(x.device)]
    x = x.to(torch.float64)
    d2 = sq_dists(x, x)
    iu = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    med = float(d2[iu[0], iu[1]].median())
    if med <= 0:
        raise ValueError("median_sq_dist: the median squared distance is 0 (mostly identical examples)")
    return med


def median_heuristic_variances(
    x: torch.Tensor,
    multipliers: Sequence[float] = MEDIAN_MULTIPLIERS,
    *,
    max_points: int = 1000,
    seed: int = 0,
) -> tuple[float, ...]:
    """Variances ``m * median(d^2) / 2`` for each multiplier ``m`` (:func:`median_sq_dist` on ``x``)."""
    base = median_sq_dist(x, max_points=max_points, seed=seed) / 2.0
    return tuple(float(m) * base for m in multipliers)


def _gram(
    a_views: Sequence[torch.Tensor],
    b_views: Sequence[torch.Tensor],
    kernels: Sequence[MultiScaleGaussian],
    zero_diagonal: bool,
) -> torch.Tensor:
    """Product-kernel Gram block [len(a), len(b)] over the views."""
    gram: torch.Tensor | None = None
    for a, b, kern in zip(a_views, b_views, kernels, strict=True):
        kv = kern(sq_dists(a, b, zero_diagonal=zero_diagonal))
        if gram is None:
            gram = kv
        elif gram.requires_grad or kv.requires_grad:
            gram = gram * kv
        else:
            gram.mul_(kv)
    if gram is None:
        raise ValueError("joint_mmd2: no views")
    return gram


def _block_sum(kernels: Sequence[MultiScaleGaussian], zero_diagonal: bool, *views: torch.Tensor) -> torch.Tensor:
    """Sum of one Gram block as a float64 scalar; ``views`` = the a-views followed by the b-views."""
    half = len(views) // 2
    return _gram(views[:half], views[half:], kernels, zero_diagonal).sum().to(torch.float64)


class _RematBlockSum(torch.autograd.Function):
    """A block sum whose Gram block is recomputed in backward instead of stored (activation
    checkpointing written out, so that it needs no ``torch.utils.checkpoint``/dynamo import)."""

    @staticmethod
    def forward(
        ctx: Any, kernels: Sequence[MultiScaleGaussian], zero_diagonal: bool, *views: torch.Tensor
    ) -> torch.Tensor:
        ctx.kernels, ctx.zero_diagonal = kernels, zero_diagonal
        ctx.save_for_backward(*views)
        with torch.no_grad():
            return _block_sum(kernels, zero_diagonal, *views)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        needs = ctx.needs_input_grad[2:]
        views = [v.detach().requires_grad_(n) for v, n in zip(ctx.saved_tensors, needs, strict=True)]
        with torch.enable_grad():
            s = _block_sum(ctx.kernels, ctx.zero_diagonal, *views)
        wanted = [v for v in views if v.requires_grad]
        grads = iter(torch.autograd.grad(s, wanted, grad_out))
        return (None, None, *(next(grads) if n else None for n in needs))


def kernel_sum(
    a_views: Sequence[torch.Tensor],
    b_views: Sequence[torch.Tensor],
    kernels: Sequence[MultiScaleGaussian],
    *,
    same: bool,
    chunk_size: int | None,
) -> torch.Tensor:
    """``sum_{i,j} prod_v k_v(a_v[i], b_v[j])`` as a float64 scalar, blockwise when ``chunk_size`` is given.

    Views are flat: ``a_views[v]`` [n, F_v], ``b_views[v]`` [m, F_v].  ``same=True`` means b is a:
    only blocks on or above the diagonal are computed (the Gram matrix is symmetric) and diagonal
    blocks get exact zero self-distances.
    """
    n, m = a_views[0].shape[0], b_views[0].shape[0]
    c = chunk_size or max(n, m)
    # Recompute blocks in backward instead of storing them, so the graph memory stays bounded too.
    remat = chunk_size is not None and torch.is_grad_enabled() and any(
        t.requires_grad for t in (*a_views, *b_views)
    )
    total = torch.zeros((), dtype=torch.float64, device=a_views[0].device)
    for i0 in range(0, n, c):
        a_blk = [a[i0 : i0 + c] for a in a_views]
        for j0 in range(i0 if same else 0, m, c):
            b_blk = [b[j0 : j0 + c] for b in b_views]
            on_diag = same and i0 == j0
            if remat:
                s = _RematBlockSum.apply(kernels, on_diag, *a_blk, *b_blk)
            else:
                s = _block_sum(kernels, on_diag, *a_blk, *b_blk)
            total = total + (s if (on_diag or not same) else 2.0 * s)
    return total


def _check_views(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], n_kernels: int) -> None:
    if len(xs) == 0 or len(xs) != len(ys) or len(xs) != n_kernels:
        raise ValueError(
            f"joint_mmd2: need one kernel per view and as many x-views as y-views; got {len(xs)} x-views, "
            f"{len(ys)} y-views, {n_kernels} kernels"
        )
    for name, views in (("x", xs), ("y", ys)):
        sizes = {int(v.shape[0]) for v in views}
        if len(sizes) != 1:
            raise ValueError(f"joint_mmd2: the {name}-views have different numbers of examples {sorted(sizes)}")
    for v, (xv, yv) in enumerate(zip(xs, ys, strict=True)):
        if xv.shape[1] != yv.shape[1]:
            raise ValueError(f"joint_mmd2: view {v} has {xv.shape[1]} features in x but {yv.shape[1]} in y")


def joint_mmd2(
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    kernels: Sequence[KernelLike],
    *,
    unbiased: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """MMD^2 between the joint samples ``(xs[0][i], xs[1][i], ...)`` and ``(ys[0][j], ...)``.

    Args:
        xs: views of the first sample, each [n, *D_v] (flattened per example).
        ys: views of the second sample, each [m, *D_v].
        kernels: one multi-scale Gaussian (or a list of variances) per view; the joint kernel is
            their product.
        unbiased: U-statistic (diagonal terms removed) instead of the biased V-statistic.
        chunk_size: block size for the memory-bounded computation; ``None`` = dense.

    Returns:
        0-d tensor, differentiable, dtype of ``xs[0]``.

    Raises:
        ValueError: mismatched views or kernels, ``chunk_size < 1``, or too few examples (the
            unbiased estimate needs at least 2 on each side).
    """
    kerns = [as_kernel(k) for k in kernels]
    xs = [flatten(x) for x in xs]
    ys = [flatten(y) for y in ys]
    _check_views(xs, ys, len(kerns))
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"joint_mmd2: chunk_size must be >= 1 or None, got {chunk_size}")
    n, m = xs[0].shape[0], ys[0].shape[0]
    if n < 1 or m < 1 or (unbiased and min(n, m) < 2):
        raise ValueError(f"joint_mmd2: too few examples (n={n}, m={m}; the unbiased estimate needs >= 2 each)")
    s_xx = kernel_sum(xs, xs, kerns, same=True, chunk_size=chunk_size)
    s_yy = kernel_sum(ys, ys, kerns, same=True, chunk_size=chunk_size)
    s_xy = kernel_sum(xs, ys, kerns, same=False, chunk_size=chunk_size)
    if unbiased:
        # The diagonal kernel value is exact (zero self-distances), so it is removed analytically.
        k0 = 1.0
        for k in kerns:
            k0 *= k.diagonal
        value = (s_xx - n * k0) / (n * (n - 1)) + (s_yy - m * k0) / (m * (m - 1)) - 2.0 * s_xy / (n * m)
    else:
        value = s_xx / n**2 + s_yy / m**2 - 2.0 * s_xy / (n * m)
    return value.to(xs[0].dtype)


def mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    variances: KernelLike,
    *,
    unbiased: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """MMD^2 between ``x`` [n, *D] and ``y`` [m, *D] with the kernel ``sum_q exp(-d^2 / (2 v_q))``.

    ``variances``: a :class:`MultiScaleGaussian`, or its variances (squared bandwidths).  See
    :func:`joint_mmd2` for the other arguments, the result and the errors.
    """
    return joint_mmd2([x], [y], [variances], unbiased=unbiased, chunk_size=chunk_size)
