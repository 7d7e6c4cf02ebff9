"""The map between the data scale benchbed uses and the scale the networks work in.

Images arrive in [0, 1] (DESIGN §3); the official codes of every model in this package work in
[-1, 1] (``Normalize(0.5, 0.5)``) with a tanh output, so images are mapped ``x_m = 2 x - 1``.
Vector data (e.g. ``gmm8``) are standardised with the training split's mean and standard deviation,
so the likelihood scale ``sigma`` means the same thing on every vector data set.

The map is affine, ``x_m = (x - shift) / scale``, so densities convert with the constant Jacobian
``log |dx_m/dx| = -sum(log scale)`` per example (:meth:`DataScale.log_det`).
"""

from __future__ import annotations

import torch
from torch import nn

from benchbed.contracts import DatasetInfo, Split


class DataScale(nn.Module):
    """Affine map between data scale and model scale; its statistics are buffers (checkpointed).

    Shapes: ``x`` is ``[B, *D]`` in both scales.
    """

    def __init__(self, info: DatasetInfo, train: Split) -> None:
        super().__init__()
        self.is_image = info.kind == "image"
        shape = info.shape
        if self.is_image:
            shift = torch.full(shape, 0.5)
            scale = torch.full(shape, 0.5)
        else:
            x = train.x.float()
            shift = x.mean(dim=0)
            # A constant coordinate would divide by zero; clamp keeps the map invertible.
            scale = x.std(dim=0).clamp_min(1e-6)
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Data scale -> model scale."""
        return (x - self.shift) / self.scale

    def to_data(self, x_m: torch.Tensor) -> torch.Tensor:
        """Model scale -> data scale (images are clamped to [0, 1])."""
        x = x_m * self.scale + self.shift
        return x.clamp(0.0, 1.0) if self.is_image else x

    def log_det(self) -> torch.Tensor:
        """``log |dx_m / dx|`` of one example (a scalar): add it to a model-scale log density."""
        return -torch.log(self.scale).sum()
