"""Divergence triangle, "triangle" (Han, Nijkamp, Fang, Hill, Zhu, Wu, CVPR 2019; ``docs/models.md#triangle``).

Three models learned jointly, with no MCMC:

* generator P(x, z) = N(z; 0, I) p_theta(x | z), x = G(z) (model scale: [-1, 1] for images);
* inference Q(x, z) = q_data(x) q_phi(z | x) = N(mu(x), diag exp(logvar(x)));
* data-space energy model Pi(x, z) = pi_alpha(x) q_phi(z | x), pi_alpha(x) ∝ exp(-E_alpha(x)).

Objective: min_{theta, phi} max_alpha  KL(Q||P) + KL(P||Pi) - KL(Q||Pi).  The EBM takes the
generator's samples as negatives, so no Langevin chain is ever run.  Per batch, three sequential
updates as in the official ``enijkamp/triangle/train_cifar10.py``:

1. E:  ``E(x).mean() - E(G(z)).mean()``, z ~ N(0, I)  (data down, samples up in energy);
2. I:  ``rec + KL + 0.1 * mean_b NLL_q(z | G(z))``, ``rec = sum_pixels (G(z_q) - x)^2 / B``;
3. G:  ``rec + E(G(z)).mean() + 0.1 * mean_b NLL_q(z | G(z))`` (the same z as in step 1).

Every update is clipped to gradient norm 100.  Optimisers: Adam betas (0.5, 0.999), lr E 1e-4,
G 3e-4, I 3e-4, weight decay 5e-4 on G only.

Outlier score: the data-space energy ``E_alpha(x)`` (higher = less like the training data), the
quantity the triangle learns as its density model pi_alpha(x) ∝ exp(-E(x)).

Deviations from the official code:
* The KL term is the official ``-0.5 * mean(1 + logvar - mu^2 - exp(logvar))``, which averages over
  the batch **and** the latent dimensions (a per-dimension weight of 1/nz against the summed
  reconstruction); kept as in the code, noted here because it differs from a textbook ELBO.
* CPU scaling: nz 32 instead of 100; MLP nets for vectors and 8x8 images; the 28/32-px conv nets of
  :mod:`benchbed_ebm.nets` (no batch norm, LeakyReLU in G instead of BN + ReLU); conv weights
  N(0, 0.02) as the official ``weights_init``.
* No learning-rate decay (0.998 per epoch officially).
* The official latent NLL drops the ``0.5 log 2 pi`` constant; so does this one (no effect on gradients).
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval
from torch import nn

from benchbed.blocks.scaling import DataScale
from benchbed.contracts import Batch, SetupContext
from benchbed.model import LatentModel
from benchbed.params import AllowInf
from benchbed_ebm.nets import Arch, Decoder, Encoder, uses_conv


def _conv_init(m: nn.Module) -> None:
    """The official ``weights_init``: conv weights ~ N(0, 0.02)."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)


def diag_normal_nll(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``0.5 sum(logvar) + 0.5 sum((z - mu)^2 / exp(logvar))`` per example ``[B]`` (official form)."""
    return 0.5 * (logvar + (z - mu) ** 2 / (1e-6 + logvar.exp())).sum(dim=-1)


class DivergenceTriangle(LatentModel):
    """Generator + inference model + data-space EBM trained by the triangle objective (no MCMC).

    Latent codes are ``[B, latent_dim]``.

    Args:
        arch: ``"auto"`` (conv nets for 28/32-px images, MLPs otherwise), ``"mlp"`` or ``"conv"``.
    """

    capabilities = frozenset({"sample", "infer", "reconstruct", "anomaly_score"})

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 32,
        hidden: Annotated[int, Gt(0)] = 200,
        channels: Annotated[int, Gt(0)] = 64,
        arch: Arch = "auto",
        e_lr: Annotated[float, Gt(0)] = 1e-4,
        g_lr: Annotated[float, Gt(0)] = 3e-4,
        i_lr: Annotated[float, Gt(0)] = 3e-4,
        beta1: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
        g_decay: Annotated[float, Ge(0)] = 5e-4,
        latent_weight: Annotated[float, Ge(0)] = 0.1,
        vae_weight: Annotated[float, Ge(0)] = 1.0,
        max_grad_norm: Annotated[float, Gt(0), AllowInf] = 100.0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden, self.channels, self.arch = hidden, channels, arch
        self.e_lr, self.g_lr, self.i_lr, self.beta1, self.g_decay = e_lr, g_lr, i_lr, beta1, g_decay
        self.latent_weight, self.vae_weight, self.max_grad_norm = latent_weight, vae_weight, max_grad_norm

    def setup(self, ctx: SetupContext) -> None:
        info = ctx.info
        conv = uses_conv(info.shape, self.arch)
        width = self.channels if conv else self.hidden
        self.scale = DataScale(info, train=ctx.train)
        self.gen = Decoder(self.latent_dim, info.shape, width=width, image=info.kind == "image", conv=conv)
        self.enc = Encoder(info.shape, 2 * self.latent_dim, width=width, conv=conv)
        self.energy = Encoder(info.shape, 1, width=width, conv=conv)
        self.apply(_conv_init)
        self.to(ctx.device)
        self.device = ctx.device
        betas = (self.beta1, 0.999)
        self.optimizers = {
            "e": torch.optim.Adam(self.energy.parameters(), lr=self.e_lr, betas=betas),
            "g": torch.optim.Adam(self.gen.parameters(), lr=self.g_lr, betas=betas, weight_decay=self.g_decay),
            "i": torch.optim.Adam(self.enc.parameters(), lr=self.i_lr, betas=betas),
        }

    def _q(self, x_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x_m).chunk(2, dim=-1)
        return mu, logvar

    def _energy(self, x_m: torch.Tensor) -> torch.Tensor:
        """``E_alpha(x)`` per example ``[B]`` (energy form 'identity')."""
        return self.energy(x_m).squeeze(-1)

    def _rec(self, x_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sum_pixels (G(z_q) - x)^2 / B, mu, logvar)`` with z_q ~ q(z|x) reparameterised."""
        mu, logvar = self._q(x_m)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return ((self.gen(z) - x_m) ** 2).sum() / x_m.shape[0], mu, logvar

    def _step(self, name: str, loss: torch.Tensor, module: nn.Module) -> None:
        """Zero every gradient, backpropagate ``loss``, clip ``module``'s and step its optimiser."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), self.max_grad_norm)
        self.optimizers[name].step()

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        x_m = self.scale.to_model(batch.x)
        z = torch.randn(x_m.shape[0], self.latent_dim, device=self.device)
        samples = self.gen(z)
        # 1. E: KL(Q||Pi) - KL(P||Pi) in alpha = E_data[E] - E_gen[E]  (log Z cancels).
        e_data, e_gen = self._energy(x_m).mean(), self._energy(samples.detach()).mean()
        self._step("e", e_data - e_gen, self.energy)
        # 2. I: KL(Q||P) (reconstruction + KL) and latent reconstruction of generated samples.
        rec, mu, logvar = self._rec(x_m)
        kld = -0.5 * torch.mean(1 + logvar - mu**2 - logvar.exp())
        mu_g, logvar_g = self._q(samples.detach())
        latent = self.latent_weight * diag_normal_nll(z, mu_g, logvar_g).mean()
        self._step("i", self.vae_weight * (rec + kld) + latent, self.enc)
        # 3. G: reconstruction + energy of its samples + latent reconstruction (KL(P||Pi) side).
        rec_g, _, _ = self._rec(x_m)
        e_fake = self._energy(samples).mean()
        mu_g, logvar_g = self._q(samples)
        latent_g = self.latent_weight * diag_normal_nll(z, mu_g, logvar_g).mean()
        self._step("g", self.vae_weight * rec_g + e_fake + latent_g, self.gen)
        return {"loss_e": (e_data - e_gen).item(), "rec": rec.item(), "kld": kld.item(),
                "latent_nll": latent.item(), "e_data": e_data.item(), "e_gen": e_gen.item()}

    # ------------------------------------------------------------------ capabilities
    def sample(self, n: int) -> torch.Tensor:
        """``[n, *D]``: G(z), z ~ N(0, I)."""
        return self.scale.to_data(self.gen(torch.randn(n, self.latent_dim, device=self.device)))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The inference model's mean ``mu(x)``: ``[B, d]``."""
        return self._q(self.scale.to_model(x))[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.to_data(self.gen(self.infer(x)))

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """The data-space energy ``E_alpha(x)`` ``[B]``; higher = more anomalous."""
        return self._energy(self.scale.to_model(x))
