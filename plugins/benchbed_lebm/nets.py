"""Networks of the latent-space EBM prior model (Pang et al. 2020, and its official 32x32 nets).

* :func:`energy_mlp`: the prior's MLP, ``nz -> 200 -> 200 -> 1`` with GELU by default; its Linear
  layers keep PyTorch's default init, as in the official code.  It outputs f(z) (negative energy).
* :class:`Ref32Generator`: the reference 32x32 generator (ConvT, ngf=64, LeakyReLU(0.2), no BN,
  tanh), xavier-normal init on the transposed-convolution weights; its first and last layers run
  as GEMMs (same parameters and values, less time on CPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "lrelu": nn.LeakyReLU, "silu": nn.SiLU}


class EnergyMLP(nn.Module):
    """f_alpha(z): [B, nz] -> [B].  ``log p_alpha(z) = f(z) + log N(z; 0, I) - log Z``."""

    def __init__(self, nz: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model 'lebm': energy_activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        sizes = [nz, *hidden]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), act(0.2) if act is nn.LeakyReLU else act()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


class ProjectionConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution applied to 1x1 inputs as the matrix product it is.

    On a 1x1 input with stride 1 and no padding, ``out[b, c, i, j] = sum_k z[b, k] W[k, c, i, j] +
    bias[c]``: one GEMM ``[B, Cin] x [Cin, kH kW Cout]``.  oneDNN's transposed-convolution kernel
    runs this shape far below the matmul rate (timings: ``docs/models-notes.md#lebm``).  Same
    parameters as ``nn.ConvTranspose2d`` (checkpoints interchange); any other input goes to the parent.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.shape[-2:] != (1, 1) or self.stride != (1, 1) or self.padding != (0, 0) or output_size is not None:
            return super().forward(x, output_size)
        b, (kh, kw) = x.shape[0], self.kernel_size
        # Columns ordered (i, j, c): the result is a channels_last [B, Cout, kH, kW] view, the layout
        # the next oneDNN layer prefers.  For channels_last weights the permuted reshape is a view.
        w = self.weight.permute(0, 2, 3, 1).reshape(self.in_channels, -1)
        bias = self.bias.repeat(kh * kw) if self.bias is not None else None
        flat = x.reshape(b, self.in_channels)
        out = flat @ w if bias is None else torch.addmm(bias, flat, w)
        return out.view(b, kh, kw, self.out_channels).permute(0, 3, 1, 2)


class ColumnConvTranspose2d(nn.ConvTranspose2d):
    """A transposed convolution with few output channels as GEMM + col2im (``F.fold``).

    ``out = fold(x^T W)``: every input pixel's ``Cin`` vector times ``W [Cin, Cout kH kW]`` gives
    its kH x kW patch of output, and ``fold`` sums the overlapping patches.  For few output
    channels (the 32x32 generator's last layer, 128 -> 3) oneDNN's kernel runs far below the matmul
    rate and this form is faster (timings: ``docs/models-notes.md#lebm``).  Same parameters as
    ``nn.ConvTranspose2d``; groups, dilation and output padding go to the parent.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        plain = self.groups == 1 and self.dilation == (1, 1) and self.output_padding == (0, 0)
        if not plain or output_size is not None or x.dim() != 4:
            return super().forward(x, output_size)
        b, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        out_hw = ((h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        cols = x.permute(0, 2, 3, 1).reshape(b * h * w, c) @ self.weight.reshape(c, -1)  # [B HW, Cout kH kW]
        out = F.fold(cols.view(b, h * w, -1).transpose(1, 2), out_hw, (kh, kw), stride=(sh, sw), padding=(ph, pw))
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class Ref32Generator(nn.Module):
    """g(z): [B, nz] -> [B, C, 32, 32] in [-1, 1] (the official ``_netG`` layout).

    Args:
        gemm_layers: compute the first layer (1x1 -> 4x4) and the last (few output channels) as
            GEMMs (:class:`ProjectionConvTranspose2d`, :class:`ColumnConvTranspose2d`); the values
            equal ``nn.ConvTranspose2d``'s up to summation order.  ``False`` gives the plain layers
            of the official code.
    """

    def __init__(self, nz: int, channels: int, ngf: int = 64, gemm_layers: bool = True) -> None:
        super().__init__()
        self.nz = nz
        first = ProjectionConvTranspose2d if gemm_layers else nn.ConvTranspose2d
        last = ColumnConvTranspose2d if gemm_layers else nn.ConvTranspose2d
        self.net = nn.Sequential(
            first(nz, ngf * 8, 4, 1, 0),  # 1x1 -> 4x4
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1),  # -> 8x8
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1),  # -> 16x16
            nn.LeakyReLU(0.2),
            last(ngf * 2, channels, 4, 2, 1),  # -> 32x32
            nn.Tanh(),
        )
        for m in self.net:
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.xavier_normal_(m.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.nz, 1, 1))
