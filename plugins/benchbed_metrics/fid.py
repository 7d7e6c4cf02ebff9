"""FID: pytorch-fid's Inception pool3 features and Fréchet distance, model samples vs the test split.

Definition: ``docs/architecture.md#metric-definitions``.

Weights are read from ``$BENCHBED_FID_WEIGHTS`` or the torch hub cache, where they are downloaded on first use
(SHA-256 checked; ``benchbed download fid`` fetches them ahead; see :mod:`benchbed_metrics.weights`); offline
or without a network the metric is ``n/a`` with instructions.  Reference statistics of a split are cached on disk
by (weights hash, split content hash, count), since every cell of a suite compares against the same split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt

from benchbed.contracts import EvalContext, MetricResult
from benchbed_metrics._batching import draw_samples, head, map_batches, split_of
from benchbed_metrics.frechet import FeatureStats, feature_stats, frechet_distance
from benchbed_metrics.weights import cache_dir, download_fid_weights, fid_weights_path, sha256_file

_NETS: dict[str, torch.nn.Module] = {}


def prepare_images(x: torch.Tensor, *, quantize: bool) -> torch.Tensor:
    """Clamp to [0, 1] and, as writing 8-bit image files for pytorch-fid would, round to multiples of 1/255."""
    x = x.float().clamp(0.0, 1.0)
    return torch.round(x * 255.0) / 255.0 if quantize else x


def _net(weights_sha: str, dims: int, device: torch.device) -> torch.nn.Module:
    from benchbed_metrics.inception import FIDInceptionFeatures

    key = f"{weights_sha}:{dims}:{device}"
    if key not in _NETS:
        _NETS.clear()  # keep one ~100 MB network in memory at most
        _NETS[key] = FIDInceptionFeatures(fid_weights_path(), dims).to(device)
    return _NETS[key]


class FID:
    """Fréchet Inception Distance.

    Args:
        n_samples: generated images.
        n_reference: images of the reference split (``None`` = all of it).
        split: reference split (``docs/architecture.md#metric-definitions``: the test split).
        batch_size: images per Inception forward pass (and per ``sample`` call).
        quantize: round images to 8 bits first, as pytorch-fid's file-based pipeline sees them.
        cache_reference: keep the reference statistics on disk under the benchbed cache.
        dims: Inception feature size, pytorch-fid's ``--dims``; only 2048 (pool3) is the standard FID.
    """

    def __init__(
        self,
        *,
        n_samples: Annotated[int, Ge(2)] = 5000,
        n_reference: Annotated[int | None, Ge(2)] = None,
        split: str = "test",
        batch_size: Annotated[int, Gt(0)] = 50,
        quantize: bool = True,
        cache_reference: bool = True,
        dims: Literal[64, 192, 768, 2048] = 2048,
    ) -> None:
        self.dims = dims
        self.n_samples = n_samples
        self.n_reference = n_reference
        self.split = split
        self.batch_size = batch_size
        self.quantize = quantize
        self.cache_reference = cache_reference

    def download(self, root: str | None = None) -> list[Path]:
        """Downloadable: fetch the Inception weights into the torch hub cache (``root`` is not used)."""
        return [download_fid_weights()]

    def _stats(self, x: torch.Tensor, net: torch.nn.Module, device: torch.device) -> FeatureStats:
        x = prepare_images(x, quantize=self.quantize)
        return feature_stats(map_batches(net, x, batch_size=self.batch_size, device=device))

    def _reference(self, ctx: EvalContext, net: torch.nn.Module, sha: str) -> FeatureStats:
        ref = head(split_of(ctx.data, self.split), self.n_reference)
        key = f"{sha[:16]}_d{self.dims}_{ref.content_hash()}_{len(ref)}_q{int(self.quantize)}"
        if key in ctx.cache:
            return ctx.cache[key]
        path = cache_dir("fid_stats") / f"{key}.npz" if self.cache_reference else None
        if path is not None and path.is_file():
            with np.load(path) as f:
                stats = FeatureStats(mu=f["mu"], sigma=f["sigma"], n=int(f["n"]))
        else:
            stats = self._stats(ref.x, net, ctx.device)
            if path is not None:
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, mu=stats.mu, sigma=stats.sigma, n=stats.n)
                tmp.replace(path)  # atomic: parallel cells never read a half-written file
        ctx.cache[key] = stats
        return stats

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        """FID between ``n_samples`` model samples and the reference split."""
        weights = fid_weights_path()  # downloads on first use; NotApplicable with instructions when it cannot
        sha = sha256_file(weights)
        net = _net(sha, self.dims, ctx.device)
        ref = self._reference(ctx, net, sha)
        gen = self._stats(draw_samples(ctx.model, self.n_samples, batch_size=self.batch_size), net, ctx.device)
        value = frechet_distance(gen, ref)
        return MetricResult(
            value=value,
            settings={
                "feature_extractor": f"pytorch-fid InceptionV3 {'pool3' if self.dims == 2048 else 'early block'} "
                f"({self.dims})",
                "dims": self.dims,
                "weights_file": weights.name,
                "weights_sha256": sha,
                "n_samples": gen.n,
                "n_reference": ref.n,
                "reference_split": self.split,
                "quantize_8bit": self.quantize,
                "resize": "bilinear 299x299 (align_corners=False)",
            },
            details={"reference_split_hash": head(split_of(ctx.data, self.split), self.n_reference).content_hash()},
        )
