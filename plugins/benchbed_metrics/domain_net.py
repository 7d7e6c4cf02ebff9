"""The small networks whose features FD-domain compares: a CNN classifier, or an autoencoder for
image data sets without labels.  Both accept any image size (adaptive pooling) and expose
``features(x) -> [B, feature_dim]``.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_body(in_channels: int, width: int, feature_dim: int) -> nn.Sequential:
    """3 conv layers (the last two stride 2), 2x2 adaptive average pool, a linear map to the features.

    The features are the linear layer's *pre*-activation output: a ReLU'd feature would have dead
    units, i.e. a singular covariance, which the Fréchet distance handles badly.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(16 * width, feature_dim),
    )


class DomainClassifier(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> logits [B, n_classes]; ``features`` are the penultimate layer."""

    def __init__(self, shape: tuple[int, ...], n_classes: int, *, width: int, feature_dim: int) -> None:
        super().__init__()
        self.body = _conv_body(shape[0], width, feature_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(feature_dim, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the labels."""
        return nn.functional.cross_entropy(self.head(self.body(x)), y)


class DomainAutoencoder(nn.Module):
    """For unlabelled images: the code of a small autoencoder (MLP decoder, sigmoid output) is the feature."""

    def __init__(self, shape: tuple[int, ...], *, width: int, feature_dim: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        n = 1
        for s in shape:
            n *= s
        self.body = _conv_body(shape[0], width, feature_dim)
        self.decoder = nn.Sequential(nn.Linear(feature_dim, 256), nn.ReLU(), nn.Linear(256, n))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Binary cross-entropy reconstruction loss on [0, 1] pixels (labels ignored)."""
        logits = self.decoder(self.body(x)).view(x.shape)
        return nn.functional.binary_cross_entropy_with_logits(logits, x)
