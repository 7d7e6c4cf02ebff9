"""benchbed.blocks.scaling and benchbed.blocks.gaussian: round trips, Jacobians, closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from benchbed.blocks.gaussian import (
    LOG_2PI,
    gaussian_log_lik,
    kl_to_std_normal,
    normal_log_prob,
    std_normal_log_prob,
)
from benchbed.blocks.scaling import DataScale
from benchbed.contracts import DatasetInfo, Split

IMAGES = DatasetInfo(name="img", shape=(1, 4, 4), kind="image")
VECTORS = DatasetInfo(name="vec", shape=(3,), kind="vector")


def _vector_split() -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randn(200, 3, generator=g) * torch.tensor([1.0, 5.0, 0.1]) + 2.0, None)


def test_images_map_to_pm1_and_back() -> None:
    scale = DataScale(IMAGES)
    x = torch.rand(5, 1, 4, 4)
    x_m = scale.to_model(x)
    assert torch.equal(x_m, 2 * x - 1)
    assert torch.equal(scale.to_data(x_m), x)
    assert scale.to_data(torch.full((1, 1, 4, 4), 3.0)).max() == 1.0  # clamped to [0, 1]
    assert scale.log_det() == 16 * math.log(2.0)
    assert scale.state_dict() == {}  # nothing learned from data: not checkpointed


def test_unit_images_and_plain_vectors_are_the_identity() -> None:
    x = torch.rand(5, 1, 4, 4)
    unit = DataScale(IMAGES, "unit")
    assert unit.is_identity and unit.to_model(x) is x and unit.log_det() == 0.0
    v = torch.randn(5, 3)
    plain = DataScale(VECTORS)
    assert plain.to_model(v) is v and plain.to_data(v) is v and plain.log_det() == 0.0
    with pytest.raises(ValueError, match="image_range"):
        DataScale(IMAGES, "pm2")


def test_standardised_vectors_round_trip_and_are_checkpointed() -> None:
    train = _vector_split()
    scale = DataScale(VECTORS, train=train)
    x_m = scale.to_model(train.x)
    torch.testing.assert_close(x_m.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_m.std(0), torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(scale.to_data(x_m), train.x, atol=1e-5, rtol=1e-5)
    assert math.isclose(scale.log_det(), -float(torch.log(train.x.std(0)).sum()), rel_tol=1e-5)
    assert set(scale.state_dict()) == {"shift", "scale"}
    other = DataScale(VECTORS, train=Split(torch.zeros(4, 3), None))
    other.load_state_dict(scale.state_dict())  # a checkpoint restores the statistics
    assert torch.equal(other.to_model(train.x), x_m)


def test_image_statistics_are_checkpointed_when_train_is_given() -> None:
    scale = DataScale(IMAGES, train=Split(torch.rand(4, 1, 4, 4), None))
    x = torch.rand(3, 1, 4, 4)
    assert torch.equal(scale.to_model(x), 2 * x - 1)
    assert set(scale.state_dict()) == {"shift", "scale"}
    assert math.isclose(scale.log_det(), 16 * math.log(2.0), rel_tol=1e-6)


def test_log_densities_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(1)
    z, mu = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    sigma = torch.rand(6, 4, generator=g) + 0.1
    normal = torch.distributions.Normal
    torch.testing.assert_close(std_normal_log_prob(z), normal(0.0, 1.0).log_prob(z).sum(-1))
    torch.testing.assert_close(normal_log_prob(z, mu, sigma), normal(mu, sigma).log_prob(z).sum(-1))
    assert std_normal_log_prob(torch.zeros(2, 3, 5)).shape == (2, 3)  # [..., d] -> [...]
    x, mean = torch.randn(6, 1, 2, 2, generator=g), torch.randn(6, 1, 2, 2, generator=g)
    want = normal(mean, math.exp(-0.3)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_lik(x, mean, -0.3), want)
    assert math.isclose(LOG_2PI, math.log(2 * math.pi))


def test_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    want = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_to_std_normal(mu, logvar), want)
