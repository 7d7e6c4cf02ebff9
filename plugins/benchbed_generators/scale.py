"""Data scale <-> model scale, and the Gaussian observation density in data-scale nats.

Images arrive in [0, 1] (DESIGN §3).  The generator family of the LEBM/SRI/ABP papers works on
[-1, 1] with a tanh output (methods.md §3: ``Normalize(0.5, 0.5)``), so images are mapped by
``x_m = 2 x - 1``.  Vector data are used as they are.

Densities reported to metrics (``log_joint``) must be densities of the *data-scale* x, so the
Jacobian of the map is added: ``log p(x) = log p_m(2x - 1) + D log 2`` for images.
"""

from __future__ import annotations

import math

import torch

from benchbed.contracts import DatasetInfo

_LOG_2PI = math.log(2.0 * math.pi)


class DataScale:
    """The affine map between the data scale and a model's working scale.

    Args:
        info: the data set's metadata; ``info.kind == "image"`` selects the [-1, 1] map.
        image_range: working range of images, ``"pm1"`` ([-1, 1]) or ``"unit"`` ([0, 1]).
    """

    def __init__(self, info: DatasetInfo, image_range: str = "pm1") -> None:
        if image_range not in ("pm1", "unit"):
            raise ValueError(f"DataScale: image_range must be 'pm1' or 'unit', got {image_range!r}")
        self.shape = tuple(info.shape)
        self.dim = info.dim
        self.is_image = info.kind == "image"
        scaled = self.is_image and image_range == "pm1"
        self.a = 2.0 if scaled else 1.0  # x_m = a * x + b
        self.b = -1.0 if scaled else 0.0
        # log |d x_m / d x| summed over the D coordinates (Jacobian of the affine map).
        self.log_det = self.dim * math.log(self.a)

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Data scale -> working scale; shape unchanged."""
        return x * self.a + self.b if self.a != 1.0 else x

    def to_data(self, x_m: torch.Tensor) -> torch.Tensor:
        """Working scale -> data scale; images are clamped to [0, 1]."""
        x = (x_m - self.b) / self.a if self.a != 1.0 else x_m
        return x.clamp(0.0, 1.0) if self.is_image else x


def gaussian_log_lik(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor | float) -> torch.Tensor:
    """log N(x; mean, std^2 I) summed over all non-batch dimensions, in nats.

    Args:
        x, mean: [B, *D].
        log_std: scalar (float or 0-dim tensor) or broadcastable to [B, *D].

    Returns:
        [B].
    """
    log_std_t = torch.as_tensor(log_std, dtype=x.dtype, device=x.device)
    sq = ((x - mean) * torch.exp(-log_std_t)).pow(2)
    per = -0.5 * sq - log_std_t - 0.5 * _LOG_2PI
    return per.flatten(1).sum(1) if per.dim() > 1 else per


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the latent dimensions: [B, *Z] -> [B]."""
    return (-0.5 * z.pow(2) - 0.5 * _LOG_2PI).flatten(1).sum(1)
