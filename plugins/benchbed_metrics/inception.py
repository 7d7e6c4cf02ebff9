"""pytorch-fid's InceptionV3 pool3 feature extractor, built from a local weights file (never fetched here:
:mod:`benchbed_metrics.weights` downloads the file into the torch hub cache, checksum-verified).

pytorch-fid's own ``fid_inception_v3()`` ends with ``load_state_dict_from_url``; here the same network
(torchvision's InceptionV3 with 1008 classes and no aux head, whose blocks pytorch-fid replaces by its
``FIDInception*`` variants that mimic TensorFlow's pooling) is assembled from pytorch-fid's classes and
the state dict is read from a local file.  The forward pass follows ``pytorch_fid.inception.InceptionV3``
with its defaults: bilinear resize to 299x299 (``align_corners=False``), scale [0, 1] -> [-1, 1], then
blocks 0-3 up to the final average pool (2048 features).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

POOL3_DIM = 2048
# pytorch-fid's ``--dims`` choices: feature size -> how many leading modules of the block list below
# (its blocks 0..3) are kept.
BLOCK_END_BY_DIM = {64: 4, 192: 7, 768: 15, 2048: 19}


def _fid_torchvision_inception() -> nn.Module:
    """The FID variant of torchvision's InceptionV3, randomly initialised (no weights fetched)."""
    import torchvision
    from pytorch_fid import inception as pfi

    # init_weights=False: the state dict overwrites everything, so skip the slow truncated-normal init.
    net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


def fid_inception_state_dict_template() -> dict[str, torch.Tensor]:
    """A randomly initialised state dict with the exact keys and shapes of pytorch-fid's weights file
    (used by tests to exercise the real code path without the real weights)."""
    net = _fid_torchvision_inception()
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.normal_(m.weight, std=0.05)
    return net.state_dict()


class FIDInceptionFeatures(nn.Module):
    """Images [B, C, H, W] in [0, 1] (C = 1 or 3) -> features [B, dims] (pool3 when dims = 2048).

    ``dims`` < 2048 stops after an earlier block and average-pools it, as pytorch-fid's ``--dims``
    does; only 2048 gives the standard FID.
    """

    def __init__(self, weights: Path, dims: int = POOL3_DIM) -> None:
        super().__init__()
        net = _fid_torchvision_inception()
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        # The blocks of pytorch_fid.inception.InceptionV3 (indices 0..3), in its order.
        if dims not in BLOCK_END_BY_DIM:
            raise ValueError(f"FID dims must be one of {sorted(BLOCK_END_BY_DIM)}, got {dims}")
        self.dims = dims
        blocks = [
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
            net.Mixed_6d, net.Mixed_6e,
            net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        ]
        self.features = nn.Sequential(*blocks[: BLOCK_END_BY_DIM[dims]])
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"FID features need images [B, 1 or 3, H, W], got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey images repeated to 3 channels (docs/architecture.md#metric-definitions)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        f = self.features(x)
        if f.shape[2:] != (1, 1):  # earlier blocks are spatial: pytorch-fid average-pools them
            f = F.adaptive_avg_pool2d(f, output_size=(1, 1))
        return f.flatten(1)
