"""shapes: factors reproduce the images, the rendering is geometrically right, parameters are checked."""

from __future__ import annotations

import math

import pytest
import torch

from benchbed.testing import load_dataset
from benchbed_datasets._base import ParameterError
from benchbed_datasets.shapes import CENTRE_MAX, R_MAX, Shapes, render

SMALL = {"n_train": 300, "n_val": 30, "n_test": 60}


@pytest.mark.parametrize(("size", "antialias"), [(28, True), (32, False)])
def test_factors_reproduce_the_images(size: int, antialias: bool) -> None:
    bundle = load_dataset("shapes", seed=3, size=size, antialias=antialias, **SMALL)
    assert bundle.extras["factor_names"] == ("shape", "scale", "rotation", "x", "y")
    for split in ("train", "val", "test"):
        x = getattr(bundle, split).x
        factors = bundle.extras["factors"][split]
        assert factors.shape == (len(x), 5) and factors.dtype == torch.float32
        assert x.shape[1:] == (1, size, size)
        assert torch.allclose(render(factors, size, antialias=antialias), x, atol=1e-6)
        assert torch.equal(getattr(bundle, split).y, factors[:, 0].long())
    if not antialias:
        assert set(torch.unique(bundle.train.x).tolist()) <= {0.0, 1.0}
    # Factors in their documented ranges; every image shows something.
    f = bundle.extras["factors"]["train"]
    assert f[:, 1].min() >= 0.5 and f[:, 1].max() <= 1.0
    assert f[:, 2].min() >= 0 and f[:, 2].max() < 2 * math.pi
    assert f[:, 3:].min() >= 0 and f[:, 3:].max() <= 1
    assert (bundle.train.x.flatten(1).sum(1) > 3).all()


def _one(shape: int, scale: float, rotation: float, x: float, y: float, size: int = 128) -> torch.Tensor:
    return render(torch.tensor([[shape, scale, rotation, x, y]]), size)[0, 0]


@pytest.mark.parametrize(
    ("shape", "area"),
    # Circumradius r: square 2 r^2, ellipse (semi-axes r, r/2) pi r^2 / 2, triangle 3 sqrt(3)/4 r^2.
    [(0, lambda r: 2 * r * r), (1, lambda r: math.pi * r * r / 2), (2, lambda r: 3 * math.sqrt(3) / 4 * r * r)],
)
def test_rendered_area_matches_geometry(shape: int, area) -> None:
    size = 128
    for scale, rotation in ((1.0, 0.3), (0.6, 2.0)):
        image = _one(shape, scale, rotation, 0.5, 0.5, size)
        pixel_area = (2 / size) ** 2  # the image spans [-1, 1]^2
        measured = float(image.sum()) * pixel_area
        assert measured == pytest.approx(area(R_MAX * scale), rel=0.02)


def test_position_convention_x_is_columns_y_is_rows_top_down() -> None:
    size = 64
    for shape in range(3):
        fx, fy = 0.2, 0.9
        image = _one(shape, 0.8, 1.0, fx, fy, size)
        idx = torch.arange(size, dtype=torch.float32)
        col = float((image.sum(0) * idx).sum() / image.sum())
        row = float((image.sum(1) * idx).sum() / image.sum())
        # centre in pixel units: normalised c = CENTRE_MAX (2 f - 1) -> pixel (c + 1) size / 2 - 1/2
        want_col = (CENTRE_MAX * (2 * fx - 1) + 1) * size / 2 - 0.5
        want_row = (CENTRE_MAX * (2 * fy - 1) + 1) * size / 2 - 0.5
        assert abs(col - want_col) < 0.3 and abs(row - want_row) < 0.3, shape


def test_rotation_symmetries() -> None:
    tri, tri_turned = _one(2, 1.0, 0.4, 0.5, 0.5), _one(2, 1.0, 0.4 + 2 * math.pi / 3, 0.5, 0.5)
    assert (tri - tri_turned).abs().max() < 1e-4
    sq, sq_turned = _one(0, 1.0, 0.4, 0.5, 0.5), _one(0, 1.0, 0.4 + math.pi / 2, 0.5, 0.5)
    assert (sq - sq_turned).abs().max() < 1e-4
    ell, ell_turned = _one(1, 1.0, 0.4, 0.5, 0.5), _one(1, 1.0, 0.4 + math.pi / 2, 0.5, 0.5)
    assert (ell - ell_turned).abs().mean() > 0.05  # an ellipse is not symmetric under a quarter turn


@pytest.mark.parametrize("size", [28, 64])
def test_shapes_stay_inside_the_image(size: int) -> None:
    corners = torch.tensor([[s, 1.0, r, x, y] for s in range(3) for r in (0.0, 0.3, 0.7) for x in (0.0, 1.0)
                            for y in (0.0, 1.0)])
    images = render(corners, size)[:, 0]
    border = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)
    assert border.max() == 0
    assert (images[:, 1:-1, 1:-1].flatten(1).max(1).values == 1).all()  # yet the shapes are there


def test_bad_parameters_and_factors() -> None:
    with pytest.raises(ParameterError, match="'size' must be an integer >= 8, got 4"):
        Shapes(size=4)
    with pytest.raises(ParameterError, match="'antialias' must be true or false"):
        Shapes(antialias="yes")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="'n_train' must be an integer >= 1, got 0"):
        Shapes(n_train=0)
    with pytest.raises(ParameterError, match=r"factors must be \[N, 5\]"):
        render(torch.zeros(3, 4))
    with pytest.raises(ParameterError, match=r"shape ids must be 0..2, got \[5\]"):
        render(torch.tensor([[5.0, 1.0, 0.0, 0.5, 0.5]]))
