"""The affine map between the data scale benchbed uses and the scale a model's networks work in.

Images arrive in [0, 1] (``docs/architecture.md``, data contract).  The generator-family papers
and their official codes work in [-1, 1] with a tanh output (``Normalize(0.5, 0.5)``), so images
are mapped ``x_m = (x - 0.5) / 0.5 = 2 x - 1`` (or kept in [0, 1] with ``image_range="unit"``).
Vector data are either used as they are, or standardised with the training split's per-coordinate
mean and standard deviation, so that a likelihood scale ``sigma`` means the same on every vector
data set.

The map is affine, ``x_m = (x - shift) / scale`` coordinate-wise, so a density of the working-scale
``x_m`` converts to a density of the data-scale ``x`` with the constant Jacobian

    log p(x) = log p_m(x_m) + log |d x_m / d x|,    log |d x_m / d x| = -sum_d log scale_d

(:meth:`DataScale.log_det`; ``D log 2`` for images in [-1, 1]).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from benchbed.contracts import DatasetInfo, Split

__all__ = ["IMAGE_RANGES", "DataScale"]

#: Working ranges of images: ``"pm1"`` ([-1, 1]) or ``"unit"`` ([0, 1], the data scale itself).
IMAGE_RANGES = ("pm1", "unit")


class DataScale(nn.Module):
    """``x_m = (x - shift) / scale`` between the data scale and a model's working scale.

    Shapes: ``x`` and ``x_m`` are ``[B, *info.shape]``; ``shift`` and ``scale`` are buffers of shape
    ``info.shape`` (they follow the model's ``.to(device)``).

    Args:
        info: the data set's metadata; ``info.kind == "image"`` selects the image map.
        image_range: working range of images, one of :data:`IMAGE_RANGES`.
        train: for vector data, standardise with this split's per-coordinate mean and standard
            deviation (clamped below at 1e-6 so that a constant coordinate stays invertible).  When
            given, ``shift`` and ``scale`` are saved in the model's checkpoints (``state_dict``),
            for images too; without it vector data are left unchanged and nothing is saved.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, info: DatasetInfo, image_range: str = "pm1", *, train: Split | None = None) -> None:
        super().__init__()
        if image_range not in IMAGE_RANGES:
            raise ValueError(f"DataScale: image_range must be one of {IMAGE_RANGES}, got {image_range!r}")
        self.shape = tuple(info.shape)
        self.dim = info.dim
        self.is_image = info.kind == "image"
        self.from_statistics = train is not None
        # The map as Python numbers when it is the same for every coordinate (else None).
        self._constant: tuple[float, float] | None = None
        if self.is_image:
            self._constant = (0.5, 0.5) if image_range == "pm1" else (0.0, 1.0)
        elif train is None:
            self._constant = (0.0, 1.0)
        if self._constant is not None:
            shift = torch.full(self.shape, self._constant[0])
            scale = torch.full(self.shape, self._constant[1])
        else:
            assert train is not None
            x = train.x.float()
            shift = x.mean(dim=0)
            scale = x.std(dim=0).clamp_min(1e-6)
        self.register_buffer("shift", shift, persistent=self.from_statistics)
        self.register_buffer("scale", scale, persistent=self.from_statistics)

    @property
    def is_identity(self) -> bool:
        """Whether ``to_model`` returns its input unchanged (unit images, untouched vectors)."""
        return self._constant == (0.0, 1.0)

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Data scale -> working scale, ``(x - shift) / scale``: ``[B, *D] -> [B, *D]``."""
        if self.is_identity:
            return x
        return (x - self.shift) / self.scale

    def to_data(self, x_m: torch.Tensor) -> torch.Tensor:
        """Working scale -> data scale, ``x_m * scale + shift``; images are clamped to [0, 1]."""
        x = x_m if self.is_identity else x_m * self.scale + self.shift
        return x.clamp(0.0, 1.0) if self.is_image else x

    def log_det(self) -> float:
        """``log |d x_m / d x| = -sum_d log scale_d`` of one example, in nats.

        Add it to a working-scale log-density to get the data-scale one.  A map fixed by the data
        kind is computed in double precision (``D log 2`` for [-1, 1] images); a map with saved
        statistics sums the float32 logarithms of its ``scale`` buffer.
        """
        if self.from_statistics or self._constant is None:
            return float(-torch.log(self.scale).sum())
        return self.dim * math.log(1.0 / self._constant[1])  # 1 / 0.5 = 2 exactly
