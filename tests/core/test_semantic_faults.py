"""Planted semantic faults fail ``check_model`` with a message naming the model and the capability.

The faulty models wrap a correct tiny model: a linear-Gaussian model ``x = W z + b + sigma eps`` with
``z ~ N(0, 1)`` and 2-D ``x`` (the fake ``toy`` data), whose every density is exact: ``log_likelihood``
is the marginal ``N(b, W W^T + sigma^2 I)`` and ``proposal`` the exact posterior.  The correct model
passes; each fault changes one method the way a plugin author might get it wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from benchbed import ModelSpec, hookimpl
from benchbed.contracts import Batch, SetupContext
from benchbed.model import LatentModel
from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.testing import check_model

_LOG_2PI = math.log(2 * math.pi)


class LinearGaussian(LatentModel):
    """``z ~ N(0, I_k)``, ``x | z ~ N(W z + b, sigma^2 I_d)``, fitted by Adam on the exact negative
    log-likelihood; every capability is exact.

    Args:
        latent_dim: k.
        lr: Adam learning rate.
    """

    capabilities = frozenset({"sample", "infer", "reconstruct", "log_joint", "log_prior", "proposal",
                              "log_likelihood"})

    def __init__(self, *, latent_dim: int = 1, lr: float = 0.05) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.lr = lr

    def setup(self, ctx: SetupContext) -> None:
        d = ctx.info.dim
        self.shape = ctx.info.shape
        self.weight = nn.Parameter(0.5 * torch.randn(d, self.latent_dim))
        self.bias = nn.Parameter(torch.zeros(d))
        self.log_sigma = nn.Parameter(torch.tensor(-1.0))
        self.optimizers = {"adam": torch.optim.Adam(self.parameters(), lr=self.lr)}

    def _marginal(self) -> MultivariateNormal:
        d = self.bias.numel()
        cov = self.weight @ self.weight.T + torch.exp(2 * self.log_sigma) * torch.eye(d)
        return MultivariateNormal(self.bias, covariance_matrix=cov)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        loss = -self._marginal().log_prob(batch.x.flatten(1)).mean()
        opt = self.optimizers["adam"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def sample_prior_base(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return (-0.5 * z**2 - 0.5 * _LOG_2PI).sum(1)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.weight.T + self.bias).view(len(z), *self.shape)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        sigma = torch.exp(self.log_sigma)
        r = (x - self._decode(z)).flatten(1) / sigma
        log_lik = (-0.5 * r**2 - self.log_sigma - 0.5 * _LOG_2PI).sum(1)
        return log_lik + self.log_prior(z)

    def proposal(self, x: torch.Tensor) -> Distribution:
        """The exact posterior N(m, S): S = (I + W^T W / sigma^2)^-1, m = S W^T (x - b) / sigma^2 (diagonal
        for k = 1, which these tests use)."""
        inv_var = torch.exp(-2 * self.log_sigma)
        precision = torch.eye(self.latent_dim) + inv_var * self.weight.T @ self.weight
        cov = torch.linalg.inv(precision)
        mean = inv_var * (x.flatten(1) - self.bias) @ self.weight @ cov
        return Independent(Normal(mean, cov.diagonal().sqrt().expand_as(mean)), 1)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return self.proposal(x).mean

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._decode(self.infer(x))

    def sample(self, n: int) -> torch.Tensor:
        return self._decode(self.sample_prior_base(n))

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        return self._marginal().log_prob(x.flatten(1))


class WrongProposalShape(LinearGaussian):
    """proposal() without ``Independent``: batch shape [B, 1] instead of [B] (the latent dimension is
    taken as a batch dimension, so log_prob returns [B, 1] and IWAE broadcasts wrongly)."""

    def proposal(self, x: torch.Tensor) -> Distribution:
        q = super().proposal(x)
        assert isinstance(q, Independent)
        return q.base_dist


class ShiftedLogLikelihood(LinearGaussian):
    """log_likelihood() 100 nats too high."""

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        return super().log_likelihood(x) + 100.0


class UnnormalisedLogJoint(LinearGaussian):
    """log_joint() without the Gaussian's normaliser ``-d/2 log(2 pi)``: off by a constant."""

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return super().log_joint(x, z) + 0.5 * x[0].numel() * _LOG_2PI


class DoubleSamples(LinearGaussian):
    """sample() in float64."""

    def sample(self, n: int) -> torch.Tensor:
        return super().sample(n).double()


class OnlyLikelihood(LinearGaussian):
    """A density model (log_likelihood, sample) whose log_likelihood is 1 nat too high: no proposal to
    compare with, so only its integral over x shows the fault."""

    capabilities = frozenset({"sample", "log_likelihood"})

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        return super().log_likelihood(x) + 1.0


class MismatchedLogJoint(LinearGaussian):
    """log_joint() that fails with a shape mismatch inside (as a wrong broadcast would)."""

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return super().log_joint(x, z) + torch.zeros(len(x) + 1)


MODELS: dict[str, type] = {
    "linear_gaussian_fake": LinearGaussian,
    "wrong_proposal": WrongProposalShape,
    "shifted_ll": ShiftedLogLikelihood,
    "unnormalised_joint": UnnormalisedLogJoint,
    "double_samples": DoubleSamples,
    "only_likelihood": OnlyLikelihood,
    "mismatched_joint": MismatchedLogJoint,
}


def _registry(helpers) -> Registry:  # noqa: ANN001
    """The fake plugin (for the ``toy`` data) plus the models above."""

    class Models:
        @hookimpl
        def benchbed_register_models(self, register: Callable[[ModelSpec], None]) -> None:
            for name, cls in MODELS.items():
                register(ModelSpec(name=name, factory=cls))

    return load_plugins(extra=[("fake", helpers.FakePlugin()), ("faults", Models())], entry_points_enabled=False,
                        strict=True).registry


def test_the_correct_model_passes(helpers) -> None:  # noqa: ANN001
    model = check_model("linear_gaussian_fake", dataset="toy", steps=30, registry=_registry(helpers))
    assert isinstance(model, LinearGaussian)


@pytest.mark.parametrize(("name", "message"), [
    ("wrong_proposal", r"model 'wrong_proposal': proposal\(\) batch shape \(8, 1\) for 8 examples, expected \(8,\)"),
    ("shifted_ll", r"model 'shifted_ll': log_likelihood\(\) lies 100(\.\d+)? nats above the IWAE estimate"),
    ("unnormalised_joint", r"model 'unnormalised_joint': log_joint\(\) - log_prior\(\) integrates to 6\.28\d* "
                           r"over x, not 1"),
    ("double_samples", r"model 'double_samples': sample\(\) dtype torch\.float64, expected torch\.float32"),
    ("only_likelihood", r"model 'only_likelihood': log_likelihood\(\) integrates to 2\.71\d* over x, not 1"),
    ("mismatched_joint", r"model 'mismatched_joint': log_joint\(\) raised RuntimeError: The size of tensor a"),
])
def test_planted_fault_is_named(helpers, name: str, message: str) -> None:  # noqa: ANN001
    with pytest.raises(AssertionError, match=message):
        check_model(name, dataset="toy", steps=30, registry=_registry(helpers))
