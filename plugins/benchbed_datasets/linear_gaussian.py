"""Linear-Gaussian latent-variable data (probabilistic PCA / factor analysis with isotropic noise).

Generative process: ``z ~ N(0, I_L)``, ``x = W z + b + noise_std * eps`` with ``eps ~ N(0, I_D)``,
``W`` [D, L], ``b`` [D].  The marginal is Gaussian in closed form:

    p(x) = N(x; b, W W^T + noise_std^2 I_D),

so ``log_prob`` is exact.  ``W`` has i.i.d. ``N(0, 1/L)`` entries (each coordinate has variance
about ``1 + noise_std^2``) and ``b`` i.i.d. ``N(0, 1)`` entries, drawn from ``param_seed`` --
*not* from the split seed, so every seed of a suite samples the same distribution and seeds stay
comparable.  The true parameters are in ``DataBundle.extras``: ``W``, ``b``, ``noise_std``,
``latent_dim`` (the "true decoder" for checking IWAE/AIS estimators), and ``latents`` holds each
split's true ``z``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt

from benchbed_datasets._base import ParameterError, SyntheticVectorSource, check_float, check_int, generator


class LinearGaussian(SyntheticVectorSource):
    """``x = W z + b + noise`` in ``dim`` dimensions with a ``latent_dim``-dimensional latent; unlabelled.

    Args:
        n_train, n_val, n_test: split sizes.
        dim: data dimension D.
        latent_dim: latent dimension L (at most ``dim``).
        noise_std: standard deviation of the isotropic observation noise.
        param_seed: seed of the true ``W`` and ``b`` (fixed across split seeds by design).
    """

    name = "linear_gaussian"

    def __init__(
        self,
        *,
        n_train: Annotated[int, Gt(0)] = 4000,
        n_val: Annotated[int, Gt(0)] = 1000,
        n_test: Annotated[int, Gt(0)] = 2000,
        dim: Annotated[int, Gt(0)] = 16,
        latent_dim: Annotated[int, Gt(0)] = 2,
        noise_std: Annotated[float, Gt(0)] = 0.1,
        param_seed: Annotated[int, Ge(0)] = 0,
    ) -> None:
        self._init_sizes(n_train, n_val, n_test)
        self.dim = check_int(self.name, "dim", dim, minimum=1)
        self.latent_dim = check_int(self.name, "latent_dim", latent_dim, minimum=1)
        if self.latent_dim > self.dim:
            raise ParameterError(
                f"data set 'linear_gaussian': latent_dim ({latent_dim}) must not exceed dim ({dim})"
            )
        self.noise_std = check_float(self.name, "noise_std", noise_std)
        self.param_seed = check_int(self.name, "param_seed", param_seed, minimum=0)

    def true_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W [D, L], b [D])`` in float64, deterministic given ``param_seed``."""
        gen = generator(self.param_seed, stream=7)
        w = torch.randn(self.dim, self.latent_dim, generator=gen, dtype=torch.float64) / math.sqrt(self.latent_dim)
        b = torch.randn(self.dim, generator=gen, dtype=torch.float64)
        return w, b

    def covariance(self) -> torch.Tensor:
        """Marginal covariance ``W W^T + noise_std^2 I`` [D, D] (float64)."""
        w, _ = self.true_parameters()
        return w @ w.T + self.noise_std**2 * torch.eye(self.dim, dtype=torch.float64)

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, None, torch.Tensor]:
        w, b = self.true_parameters()
        z = torch.randn(n, self.latent_dim, generator=gen, dtype=torch.float64)
        eps = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        return (z @ w.T + b + self.noise_std * eps).float(), None, z.float()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log N(x; b, W W^T + noise_std^2 I)`` at ``x`` [B, D] -> [B] (nats)."""
        _, b = self.true_parameters()
        dist = torch.distributions.MultivariateNormal(b, covariance_matrix=self.covariance())
        return dist.log_prob(x.detach().to("cpu", torch.float64)).to(device=x.device, dtype=x.dtype)

    def extras(self) -> dict[str, Any]:
        w, b = self.true_parameters()
        return {"W": w.float(), "b": b.float(), "noise_std": self.noise_std, "latent_dim": self.latent_dim}
