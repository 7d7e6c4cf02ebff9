"""A latent-space EBM with its own energy, built only from benchbed's public toolkit.

p(x, z) = p_a(z) N(x; g(z), sigma^2 I) with p_a(z) = exp(f(z)) N(z; 0, I) / Z(a), where the energy is a
learned Gaussian tilt plus a SiLU MLP:  f(z) = mlp(z) + b.z - 1/2 sum_i softplus(c_i) z_i^2.
Learning is the LEBM maximum-likelihood gradient: the suite's "posterior" chains give z ~ p(z|x) (g's
step and f's positive phase), its "prior" chains give z ~ p_a(z) (f's negative phase).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchbed.blocks.chains import run_chains
from benchbed.blocks.fused import fused_log_density, jet
from benchbed.blocks.gaussian import std_normal_log_prob
from benchbed.blocks.latent import GENERATOR_CAPABILITIES, DynamicsGenerator
from benchbed.blocks.nets import build_generator, mlp, resolve_arch
from benchbed.contracts import Capability


class QuadraticMLPEnergy(nn.Module):
    """f(z) = mlp(z) + b.z - 1/2 sum softplus(c) z^2: [B, Z] -> [B]; the tilt starts near zero."""

    def __init__(self, nz: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.mlp = mlp([nz, *hidden, 1], nn.SiLU)
        self.b, self.c = nn.Parameter(torch.zeros(nz)), nn.Parameter(torch.full((nz,), -4.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(z).squeeze(-1) + z @ self.b - 0.5 * (F.softplus(self.c) * z * z).sum(-1)


class QuadLEBM(DynamicsGenerator):
    model_name = "quad_lebm"
    capabilities = GENERATOR_CAPABILITIES | {Capability.LOG_PARTITION}

    def __init__(self, *, latent_dim: int = 8, arch: str = "auto", hidden: tuple[int, ...] = (128, 128),
                 energy_hidden: tuple[int, ...] = (64, 64), obs_std: float = 0.3, prior_steps: int = 40,
                 prior_step_size: float = 0.4, posterior_steps: int = 20, posterior_step_size: float = 0.1,
                 lr_g: float = 1e-3, lr_e: float = 5e-4, infer_rounds: int = 1, partition_samples: int = 10000) -> None:
        super().__init__()
        self.latent_dim, self.arch, self.hidden, self.energy_hidden = latent_dim, arch, hidden, energy_hidden
        self.obs_std, self.infer_rounds, self.partition_samples, self.lr_g, self.lr_e = (
            obs_std, infer_rounds, partition_samples, lr_g, lr_e)
        self.chains = {"prior": (prior_steps, prior_step_size), "posterior": (posterior_steps, posterior_step_size)}

    def setup(self, ctx) -> None:
        self._setup_common(ctx)
        arch = resolve_arch(ctx.info, self.arch, owner=f"model {self.model_name!r}")
        self.generator = build_generator(ctx.info, self.latent_dim, arch, self.hidden)
        self.energy = QuadraticMLPEnergy(self.latent_dim, self.energy_hidden)
        self.to(ctx.device)
        self.prior_sampler, self.posterior_sampler = (
            ctx.sampler(role, n_steps=k, step_size=s) for role, (k, s) in self.chains.items())
        self.optimizers = {"generator": torch.optim.Adam(self.generator.parameters(), self.lr_g, betas=(0.5, 0.999)),
                           "energy": torch.optim.Adam(self.energy.parameters(), self.lr_e, betas=(0.5, 0.999))}

    def _networks(self) -> tuple[nn.Module, ...]:
        return (self.generator, self.energy)

    def _energy_jet(self):  # f's forward and input gradient for the fused posterior/prior densities
        return jet(self.energy)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised log p_a(z) = f(z) + log N(z; 0, I) (log Z left out): [B]."""
        return self.energy(z) + std_normal_log_prob(z)

    def sample_latent(self, n: int) -> torch.Tensor:
        """Prior short-run chains from N(0, I): [n, Z]."""
        log_density = fused_log_density(self._fused_fn(None)) if self.fused else self.log_prior
        return run_chains(self.prior_sampler, log_density, self.sample_prior_base(n), *self._networks()).z

    def log_partition(self, n: int | None = None) -> tuple[float, int]:
        """log Z = log E_{N(0, I)}[exp f(z)], a J-sample Monte Carlo estimate (biased low): (value, J)."""
        n = self.partition_samples if n is None else n
        with torch.no_grad():
            return float(torch.logsumexp(self.energy(self.sample_prior_base(n)), 0) - math.log(n)), n

    def train_step(self, batch, step: int) -> dict[str, float]:
        x_m = self.scale.to_model(batch.x.to(self.device))
        z_post, z_prior = self.infer_m(x_m), self.sample_latent(x_m.shape[0])
        loss_g = (self.generator(z_post) - x_m).pow(2).sum() / x_m.shape[0]
        loss_e = self.energy(z_prior).mean() - self.energy(z_post).mean()  # -(positive - negative phase)
        for loss, name in ((loss_g, "generator"), (loss_e, "energy")):
            self.optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            self.optimizers[name].step()
        return {"loss_g": loss_g.item(), "loss_e": loss_e.item()}
