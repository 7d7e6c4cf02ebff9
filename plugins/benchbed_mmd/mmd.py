"""Maximum mean discrepancy estimators: dense and memory-bounded (chunked), biased and unbiased.

For samples X = {x_i}_{i<n} ~ P and Y = {y_j}_{j<m} ~ Q and a kernel k (Gretton et al. 2012, eq. 3-5):

* biased V-statistic (the GMMN loss, diagonal included; methods.md §1)::

      MMD_b^2 = 1/n^2 sum_{i,i'} k(x_i,x_i') + 1/m^2 sum_{j,j'} k(y_j,y_j') - 2/(nm) sum_{i,j} k(x_i,y_j)

* unbiased U-statistic (diagonal removed)::

      MMD_u^2 = 1/(n(n-1)) sum_{i!=i'} k(x_i,x_i') + 1/(m(m-1)) sum_{j!=j'} k(y_j,y_j') - 2/(nm) sum_{i,j} k(x_i,y_j)

A **joint** MMD (Long et al. 2017, JMMD, used by JGMMN) compares pairs (a, b) with the product kernel
``k((a,b),(a',b')) = k_a(a,a') * k_b(b,b')``: :func:`joint_mmd2` takes one tensor per view and
one kernel per view, and the Gram matrix is the elementwise product of the views' Gram matrices.

Memory: the dense path builds [n, n], [m, m] and [n, m] blocks.  With ``chunk_size=c`` the sums are
accumulated over c x c blocks (only the upper-triangular blocks of the self terms are computed, the
off-diagonal ones counted twice), so peak extra memory is a few c^2 floats whatever n and m are.
When gradients are needed each block is recomputed in the backward pass (activation
checkpointing), so the autograd graph does not hold n^2 values either.  Block sums are accumulated
in float64; the result has the dtype of the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchbed_mmd.kernels import GMMN_MNIST_VARIANCES, MultiScaleGaussian, as_kernel, flatten, sq_dists

KernelLike = Sequence[float] | float | MultiScaleGaussian


def _gram(a_views: Sequence[torch.Tensor], b_views: Sequence[torch.Tensor],
          kernels: Sequence[MultiScaleGaussian], zero_diagonal: bool) -> torch.Tensor:
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
    assert gram is not None
    return gram


def _block_sum(kernels: Sequence[MultiScaleGaussian], zero_diagonal: bool, *views: torch.Tensor) -> torch.Tensor:
    """Sum of one Gram block; ``views`` = the a-views followed by the b-views."""
    half = len(views) // 2
    return _gram(views[:half], views[half:], kernels, zero_diagonal).sum().to(torch.float64)


class _RematBlockSum(torch.autograd.Function):
    """A block sum whose Gram block is recomputed in backward instead of stored (activation
    checkpointing written out, so that it needs no ``torch.utils.checkpoint``/dynamo import)."""

    @staticmethod
    def forward(ctx, kernels, zero_diagonal, *views):  # type: ignore[no-untyped-def,override]
        ctx.kernels, ctx.zero_diagonal = kernels, zero_diagonal
        ctx.save_for_backward(*views)
        with torch.no_grad():
            return _block_sum(kernels, zero_diagonal, *views)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[no-untyped-def,override]
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
    """``sum_{i,j} K(a_i, b_j)`` as a float64 scalar, blockwise when ``chunk_size`` is given.

    ``same=True`` means b is a: only blocks on or above the diagonal are computed (K is
    symmetric) and diagonal blocks get exact zero self-distances.
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
    variances: KernelLike = GMMN_MNIST_VARIANCES,
    *,
    unbiased: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """MMD^2 between ``x`` [n, *D] and ``y`` [m, *D] with the kernel ``sum_q exp(-d^2 / (2 v_q))``.

    ``variances`` are squared bandwidths (the official GMMN code's "sigma"); the default is the
    official MNIST set (2, 5, 10, 20, 40, 80).  See :func:`joint_mmd2` for the other arguments.
    """
    return joint_mmd2([x], [y], [variances], unbiased=unbiased, chunk_size=chunk_size)


def sqrt_loss(value: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The GMMN training loss sqrt(MMD^2) (official ``SqrtGaussianKernelMmdLoss``).

    sqrt keeps the gradient from vanishing as MMD^2 -> 0 (Li et al. 2015, §3.3).  The estimate is
    clamped at 0 (a U-statistic can be negative) and ``eps`` keeps the gradient finite there.
    """
    return torch.sqrt(value.clamp_min(0.0) + eps)
