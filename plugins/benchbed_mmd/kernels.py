"""Multi-scale Gaussian kernels on squared distances, and the median heuristic for their scales.

The GMMN kernel (Li et al. 2015, §3; methods.md §1) is a sum of Gaussian kernels over scales:

    k(x, y) = sum_q exp(-||x - y||^2 / (2 v_q))

where ``v_q`` is a **variance** (squared bandwidth).  The official code calls it ``sigma`` but computes
``exp(-d^2 / (2 sigma))``; here the parameter is named ``variances`` so that nobody reads it as a
bandwidth.  All scale weights are 1, as in the official code.

Shapes: ``a`` [N, F], ``b`` [M, F] (examples flattened to F features) -> kernel blocks [N, M].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Variances of the official MNIST input-space GMMN (``train.py: mnist_mmd_input_space``), for
#: 784-dimensional data in [0, 1].
GMMN_MNIST_VARIANCES: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)

#: Multipliers of the median-heuristic base variance: factors of 4 from 1/256 to 4, so that fine
#: (within-mode: a mode of std 0.1 on the radius-2 ring of ``gmm8`` needs v ~ 0.01-0.06) and coarse
#: (between-mode) structure both give gradient.
MEDIAN_MULTIPLIERS: tuple[float, ...] = (1 / 256, 1 / 64, 1 / 16, 1 / 4, 1.0, 4.0)


def flatten(x: torch.Tensor) -> torch.Tensor:
    """[N, *D] -> [N, prod(D)]; a [N] tensor becomes [N, 1]."""
    return x.reshape(x.shape[0], -1)


def _tracked(*tensors: torch.Tensor) -> bool:
    """Whether autograd records operations on ``tensors`` (then no in-place updates are used)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def sq_dists(a: torch.Tensor, b: torch.Tensor, *, zero_diagonal: bool = False) -> torch.Tensor:
    """Squared Euclidean distances [N, M] via ``|a|^2 + |b|^2 - 2 a b^T`` (one matmul).

    The expansion can round to tiny negative numbers; they are clamped to 0.  ``zero_diagonal``
    (for a block of a set against itself, N == M) sets the diagonal to exactly 0, so that the
    diagonal kernel value is exact and the U-statistic can remove it analytically.
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
    """``k(d^2) = sum_q exp(-d^2 / (2 v_q))`` with unit weights (the GMMN kernel).

    Attributes:
        variances: the v_q, each > 0 (squared bandwidths, not bandwidths).
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
        """k(x, x): one per scale."""
        return float(len(self.variances))

    def __call__(self, d2: torch.Tensor) -> torch.Tensor:
        """Kernel values for squared distances ``d2`` (any shape)."""
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


def as_kernel(variances: Sequence[float] | MultiScaleGaussian) -> MultiScaleGaussian:
    """Accept either a kernel or a sequence of variances (a single float is one scale)."""
    if isinstance(variances, MultiScaleGaussian):
        return variances
    if isinstance(variances, int | float):
        return MultiScaleGaussian((float(variances),))
    return MultiScaleGaussian(tuple(float(v) for v in variances))


def median_sq_dist(x: torch.Tensor, *, max_points: int = 1000, seed: int = 0) -> float:
    """Median of the pairwise squared distances (i < j) among at most ``max_points`` rows of ``x``.

    The subset is drawn with a generator seeded by ``seed``, so the value is deterministic.

    Raises:
        ValueError: fewer than two examples, or all of them identical.
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
    """Variances ``m * median(d^2) / 2`` for each multiplier ``m``.

    With ``v = median(d^2) / 2`` the kernel is ``exp(-1)`` at the median distance, i.e. the base
    scale sits where the kernel neither saturates (all 1) nor vanishes (all 0).
    """
    base = median_sq_dist(x, max_points=max_points, seed=seed) / 2.0
    return tuple(float(m) * base for m in multipliers)


def dim_scaled_gmmn_variances(dim: int, reference_dim: int = 784) -> tuple[float, ...]:
    """The official MNIST variances scaled by ``dim / reference_dim``.

    Squared distances between [0, 1] images grow linearly with the number of pixels, so this keeps
    the kernels in the same relation to the data as the official 784-pixel setting (and equals
    it for MNIST).
    """
    return tuple(v * dim / reference_dim for v in GMMN_MNIST_VARIANCES)
