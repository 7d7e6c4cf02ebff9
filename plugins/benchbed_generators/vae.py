"""Variational auto-encoder (Kingma & Welling 2014) with a Gaussian decoder.

Model: z ~ N(0, I), x_m | z ~ N(g(z), sigma^2 I) in the working scale (images: x_m = 2x - 1,
see :mod:`.scale`); encoder q(z|x) = N(mu(x), diag exp(logvar(x))).  Training maximises the ELBO

    L(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I))        (Kingma & Welling, eq. 10)

with one reparameterised sample and the analytic KL.  ``sigma`` is fixed (``learn_obs_std=False``)
or one learned scalar.  Every density handed to metrics is in data-scale nats (the Jacobian of the
scale map is included), so importance sampling with :meth:`proposal` gives a valid IWAE bound.
No dynamics: the sampler axis does not apply (``uses_sampler=False``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

import torch
from annotated_types import Gt
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from benchbed.blocks.gaussian import gaussian_log_lik, kl_to_std_normal, std_normal_log_prob
from benchbed.blocks.nets import build_encoder, build_generator, resolve_arch
from benchbed.blocks.scaling import DataScale
from benchbed.contracts import Batch, Capability, SetupContext
from benchbed.model import LatentModel

# Below this observation std (working scale) the Gaussian likelihood can blow up on flat pixels.
_MIN_LOG_STD = math.log(1e-3)


class VAE(LatentModel):
    """Gaussian VAE; MLP for vectors and 8x8 images, conv nets for 28/32-pixel images.

    Args:
        latent_dim: size of z.
        arch: "auto", "mlp" or "conv" (see :func:`benchbed.blocks.nets.resolve_arch`).
        hidden: MLP hidden widths of the decoder (the encoder mirrors them).
        lr: Adam learning rate.
        obs_std: observation std sigma in the working scale (the initial value when learned).
        learn_obs_std: learn one global sigma with the ELBO.
        n_score_samples: encoder samples used by :meth:`anomaly_score` (negative ELBO).
    """

    capabilities = frozenset(
        {
            Capability.SAMPLE,
            Capability.INFER,
            Capability.RECONSTRUCT,
            Capability.LOG_JOINT,
            Capability.LOG_PRIOR,
            Capability.PROPOSAL,
            Capability.ANOMALY_SCORE,
        }
    )

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 16,
        arch: str = "auto",
        hidden: tuple[Annotated[int, Gt(0)], ...] = (256, 256),
        lr: Annotated[float, Gt(0)] = 1e-3,
        obs_std: Annotated[float, Gt(0)] = 0.3,
        learn_obs_std: bool = True,
        n_score_samples: Annotated[int, Gt(0)] = 8,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden = tuple(hidden)
        self.lr = lr
        self.obs_std = obs_std
        self.learn_obs_std = learn_obs_std
        self.n_score_samples = n_score_samples

    # ----------------------------------------------------------------------------- building
    def setup(self, ctx: SetupContext) -> None:
        """Build encoder, decoder, sigma and the Adam optimiser for ``ctx.info``."""
        if self.obs_std <= 0:
            raise ValueError(f"model 'vae': obs_std must be > 0, got {self.obs_std}")
        self.device = ctx.device
        self.scale = DataScale(ctx.info)
        arch = resolve_arch(ctx.info, self.arch, owner="model 'vae'")
        self.encoder = build_encoder(ctx.info, 2 * self.latent_dim, arch, self.hidden)
        self.decoder = build_generator(ctx.info, self.latent_dim, arch, self.hidden)
        self.log_std = nn.Parameter(torch.tensor(math.log(self.obs_std)), requires_grad=self.learn_obs_std)
        self.to(ctx.device)
        params = [p for p in self.parameters() if p.requires_grad]
        self.optimizers = {"vae": torch.optim.Adam(params, lr=self.lr)}

    def _log_std(self) -> torch.Tensor:
        return self.log_std.clamp(min=_MIN_LOG_STD)

    def _encode(self, x_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Working-scale x [B, *D] -> (mu, logvar), each [B, Z]."""
        mu, logvar = self.encoder(x_m).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def _log_lik(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) of the *data-scale* x, nats: [B]."""
        return gaussian_log_lik(x_m, self.decoder(z), self._log_std()) + self.scale.log_det()

    def _neg_elbo(self, x_m: torch.Tensor, n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(-ELBO [B], KL [B]) with ``n`` reparameterised samples and the analytic KL."""
        mu, logvar = self._encode(x_m)
        kl = kl_to_std_normal(mu, logvar)
        std = (0.5 * logvar).exp()
        rec = torch.stack([self._log_lik(x_m, mu + std * torch.randn_like(std)) for _ in range(n)]).mean(0)
        return kl - rec, kl

    # ----------------------------------------------------------------------------- training
    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """One Adam step on the mean negative ELBO of the batch."""
        x_m = self.scale.to_model(batch.x.to(self.device))
        nelbo, kl = self._neg_elbo(x_m)
        loss = nelbo.mean()
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "kl": kl.mean().item(), "obs_std": self._log_std().exp().item()}

    # ----------------------------------------------------------------------------- capabilities
    def sample_prior_base(self, n: int) -> torch.Tensor:
        """z ~ N(0, I): [n, Z]."""
        return torch.randn(n, self.latent_dim, device=self.device)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) (normalised): [B, Z] -> [B]."""
        return std_normal_log_prob(z)

    def sample(self, n: int) -> torch.Tensor:
        """Decoder means g(z), z ~ N(0, I), in the data scale: [n, *D]."""
        return self.scale.to_data(self.decoder(self.sample_prior_base(n)))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder mean mu(x): [B, *D] -> [B, Z]."""
        return self._encode(self.scale.to_model(x))[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """g(mu(x)) in the data scale: [B, *D]."""
        return self.scale.to_data(self.decoder(self.infer(x)))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) + log N(z; 0, I), nats of the data-scale x: [B]."""
        return self._log_lik(self.scale.to_model(x), z) + std_normal_log_prob(z)

    def proposal(self, x: torch.Tensor) -> Distribution:
        """q(z|x) = N(mu, diag sigma^2), batch shape [B], event shape [Z]."""
        mu, logvar = self._encode(self.scale.to_model(x))
        return Independent(Normal(mu, (0.5 * logvar).exp()), 1)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO in nats (``n_score_samples`` encoder samples): [B], higher = more anomalous."""
        return self._neg_elbo(self.scale.to_model(x), self.n_score_samples)[0]
