"""Procedural dSprites-like images: a white square, ellipse or triangle on black; label = shape.

Each image is rendered from five ground-truth factors (one row of ``factors`` [N, 5], float32):

=====  ==========  =====================================================================
col    factor      meaning
=====  ==========  =====================================================================
0      shape       0 = square, 1 = ellipse (semi-axes 1 : 0.5), 2 = equilateral triangle
1      scale       in [0.5, 1]; the circumradius is ``R_MAX * scale`` (half-widths of the image)
2      rotation    radians in [0, 2 pi) (the square repeats every pi/2, the ellipse every pi,
                   the triangle every 2 pi/3, so rotation is identifiable only modulo those)
3      x           horizontal position in [0, 1], left to right
4      y           vertical position in [0, 1], top to bottom
=====  ==========  =====================================================================

Rendering is vectorised over the whole batch: every pixel centre ``p`` (normalised coordinates in
[-1, 1]) is mapped into the shape's frame, ``q = Rot(-rotation) (p - centre) / radius``, a signed
distance to the unit shape is evaluated there, and the pixel value is ``clamp(1/2 - d / pixel, 0, 1)``
(analytic anti-aliasing over about one pixel) or ``d < 0`` without anti-aliasing.  Position ``x``
maps to the centre ``CENTRE_MAX * (2 x - 1)`` with ``CENTRE_MAX = 1 - R_MAX - 0.1``, so every shape
lies inside the image with a black border (at least one pixel at 28x28 and larger).
:func:`render` is public: the factors in ``DataBundle.extras["factors"]`` reproduce the images.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Ge, Gt

from benchbed.contracts import DataBundle, DatasetInfo, Split
from benchbed_datasets._base import ParameterError, check_int, generator

R_MAX = 0.5  # largest circumradius, in half-widths of the image
CENTRE_MAX = 1.0 - R_MAX - 0.1  # |centre| bound: a black border of >= 1 pixel at 28x28 and up
SHAPE_NAMES = ("square", "ellipse", "triangle")
FACTOR_NAMES = ("shape", "scale", "rotation", "x", "y")
_CHUNK = 1024  # images per rendering block: keeps the temporaries (4 MB each) cache-sized


class _Frame:
    """Per-image affine maps from pixel grids to the shape's frame, for one block of images.

    ``along(nx, ny)`` is ``q . n`` on the whole grid, where ``q = Rot(-rotation)(p - centre) / radius``
    is the pixel centre in the shape's frame (in units of its circumradius).  Because ``q`` is affine
    in the pixel's column and row coordinates, ``q . n`` = (per-image column term [n, 1, S]) + (row
    term [n, S, 1]): one full-size addition per direction.  Rendering cost is dominated by such
    full-size operations, so the signed distances below are written to need as few as possible.
    """

    def __init__(self, factors: torch.Tensor, size: int) -> None:
        f = factors.to(torch.float64)
        self.radius = R_MAX * f[:, 1]
        self.cos, self.sin = f[:, 2].cos(), f[:, 2].sin()
        grid = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1  # pixel centres in [-1, 1]
        self.u = grid[None, :] - (CENTRE_MAX * (2 * f[:, 3] - 1))[:, None]  # column offsets [n, S]
        self.v = grid[None, :] - (CENTRE_MAX * (2 * f[:, 4] - 1))[:, None]  # row offsets [n, S]

    def along(self, nx: float, ny: float) -> torch.Tensor:
        # q . n = [(cos nx - sin ny) u + (sin nx + cos ny) v] / radius
        a = ((self.cos * nx - self.sin * ny) / self.radius)[:, None] * self.u
        b = ((self.sin * nx + self.cos * ny) / self.radius)[:, None] * self.v
        return a.float()[:, None, :] + b.float()[:, :, None]


def _sdf_square(frame: _Frame) -> torch.Tensor:
    # Unit circumradius -> half-side 1/sqrt(2).  max(|qx|, |qy|) - h is exact inside and a slight
    # under-estimate just outside the corners, which only softens corner anti-aliasing.
    return torch.maximum(frame.along(1, 0).abs_(), frame.along(0, 1).abs_()).sub_(1 / math.sqrt(2))


def _sdf_ellipse(frame: _Frame) -> torch.Tensor:
    # Implicit g = qx^2 + (qy/0.5)^2 - 1; first-order distance g / |grad g| (exact on the boundary,
    # which is all anti-aliasing needs).
    qx2, qy2 = frame.along(1, 0).square_(), frame.along(0, 1).square_()
    g = torch.add(qx2, qy2, alpha=4.0).sub_(1.0)
    grad = torch.add(qx2, qy2, alpha=16.0).sqrt_().mul_(2.0).clamp_min_(1e-6)
    return g.div_(grad)


_TRI_NORMALS = [(math.cos(math.pi / 2 + 2 * math.pi * k / 3), math.sin(math.pi / 2 + 2 * math.pi * k / 3))
                for k in range(3)]


def _sdf_triangle(frame: _Frame) -> torch.Tensor:
    # Equilateral triangle with unit circumradius = intersection of three half-planes at distance
    # 1/2 (the inradius) along outward normals 120 degrees apart.
    d = [frame.along(nx, ny) for nx, ny in _TRI_NORMALS]
    return torch.maximum(torch.maximum(d[0], d[1], out=d[0]), d[2], out=d[0]).sub_(0.5)


_SDFS = (_sdf_square, _sdf_ellipse, _sdf_triangle)


def _render_block(factors: torch.Tensor, shape_id: int, size: int, antialias: bool) -> torch.Tensor:
    """Render images of one shape: ``factors`` [n, 5] -> [n, size, size] float32."""
    frame = _Frame(factors, size)
    dist = _SDFS[shape_id](frame)  # signed distance in units of the circumradius
    if not antialias:
        return (dist < 0).float()
    # Pixel value 1/2 - d / pixel, with d in image units = dist * radius and a pixel = 2 / size.
    per_pixel = (frame.radius * (size / 2)).float()[:, None, None]
    return dist.mul_(per_pixel).neg_().add_(0.5).clamp_(0.0, 1.0)


def render(factors: torch.Tensor, size: int = 28, *, antialias: bool = True) -> torch.Tensor:
    """Render ``factors`` [N, 5] (columns :data:`FACTOR_NAMES`) to images [N, 1, size, size] in [0, 1].

    Raises:
        ParameterError: wrong factor shape or a shape id outside 0..2.
    """
    if factors.ndim != 2 or factors.shape[1] != 5:
        raise ParameterError(
            f"shapes.render: factors must be [N, 5] ({', '.join(FACTOR_NAMES)}), got {tuple(factors.shape)}"
        )
    factors = factors.detach().cpu()
    shape_id = factors[:, 0].round().long()
    if len(shape_id) and (shape_id.min() < 0 or shape_id.max() > 2):
        raise ParameterError(f"shapes.render: shape ids must be 0..2, got {sorted(set(shape_id.tolist()))}")
    out = torch.empty(len(factors), size, size, dtype=torch.float32)
    for k in range(3):
        idx = torch.nonzero(shape_id == k).squeeze(1)
        for block in idx.split(_CHUNK):
            out[block] = _render_block(factors[block], k, size, antialias)
    return out.unsqueeze(1)


def sample_factors(n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` i.i.d. factor rows: shape uniform on {0,1,2}, the rest uniform on their ranges."""
    u = torch.rand(n, 4, generator=gen, dtype=torch.float64)
    shape = torch.randint(0, 3, (n,), generator=gen).double()
    scale = 0.5 + 0.5 * u[:, 0]
    rotation = 2 * math.pi * u[:, 1]
    return torch.stack([shape, scale, rotation, u[:, 2], u[:, 3]], dim=1).float()


class Shapes:
    """dSprites-like grey images generated from the seed; label = shape class (0..2).

    Args:
        n_train, n_val, n_test: split sizes.
        size: image side in pixels (28 default, 32 also common); at least 8.
        antialias: soft (anti-aliased) edges; ``False`` gives binary images.
    """

    name = "shapes"

    def __init__(
        self,
        *,
        n_train: Annotated[int, Gt(0)] = 10000,
        n_val: Annotated[int, Gt(0)] = 1000,
        n_test: Annotated[int, Gt(0)] = 2000,
        size: Annotated[int, Ge(8)] = 28,
        antialias: bool = True,
    ) -> None:
        self.n_train = check_int(self.name, "n_train", n_train, minimum=1)
        self.n_val = check_int(self.name, "n_val", n_val, minimum=1)
        self.n_test = check_int(self.name, "n_test", n_test, minimum=1)
        self.size = check_int(self.name, "size", size, minimum=8)
        if not isinstance(antialias, bool):
            raise ParameterError(f"data set 'shapes': parameter 'antialias' must be true or false, got {antialias!r}")
        self.antialias = antialias

    def load(self, *, seed: int) -> DataBundle:
        """Sample factors from ``seed`` and render them; factors go to ``extras["factors"]``."""
        n = self.n_train + self.n_val + self.n_test
        factors = sample_factors(n, generator(seed))
        images = render(factors, self.size, antialias=self.antialias)
        labels = factors[:, 0].long()
        edges = {"train": (0, self.n_train), "val": (self.n_train, self.n_train + self.n_val),
                 "test": (self.n_train + self.n_val, n)}
        splits = {k: Split(images[a:b].clone(), labels[a:b].clone()) for k, (a, b) in edges.items()}
        info = DatasetInfo(
            name=self.name, shape=(1, self.size, self.size), kind="image", n_classes=3, label_names=SHAPE_NAMES
        )
        extras = {
            "factors": {k: factors[a:b].clone() for k, (a, b) in edges.items()},
            "factor_names": FACTOR_NAMES,
            "render": {"size": self.size, "antialias": self.antialias},
        }
        return DataBundle(info=info, extras=extras, **splits)

    def __repr__(self) -> str:
        return (f"Shapes(n_train={self.n_train}, n_val={self.n_val}, n_test={self.n_test}, "
                f"size={self.size}, antialias={self.antialias})")
