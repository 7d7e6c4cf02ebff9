"""Fréchet distance between two feature sets (the distance FID, FD-domain and FD-raw share).

The distance itself is pytorch-fid's ``calculate_frechet_distance`` (Heusel et al. 2017, eq. 6:
``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``); this module only computes the Gaussian statistics
the way pytorch-fid does (mean and ``np.cov(rowvar=False)``, float64).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class FeatureStats:
    """Mean ``mu`` [F] and covariance ``sigma`` [F, F] (float64) of ``n`` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def feature_stats(features: torch.Tensor | np.ndarray) -> FeatureStats:
    """Gaussian statistics of features [N, F] as pytorch-fid computes them (N >= 2)."""
    f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    f = f.reshape(f.shape[0], -1).astype(np.float64)
    if f.shape[0] < 2:
        raise ValueError(f"Fréchet distance needs at least 2 feature vectors, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise ValueError("Fréchet distance: features contain non-finite values")
    return FeatureStats(mu=f.mean(axis=0), sigma=np.atleast_2d(np.cov(f, rowvar=False)), n=int(f.shape[0]))


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """pytorch-fid's Fréchet distance between the Gaussians fitted to two feature sets."""
    from pytorch_fid.fid_score import calculate_frechet_distance  # heavy import (scipy, torchvision)

    if a.mu.shape != b.mu.shape:
        raise ValueError(f"Fréchet distance: feature sizes differ ({a.mu.shape[0]} vs {b.mu.shape[0]})")
    with warnings.catch_warnings():
        # pytorch-fid 0.3 passes scipy's deprecated ``disp`` argument to sqrtm; not our concern.
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        return float(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))


def frechet_between(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between two raw feature sets [N, F] and [M, F]."""
    return frechet_distance(feature_stats(x), feature_stats(y))
