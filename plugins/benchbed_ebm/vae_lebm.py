"""Joint training of a VAE and a latent EBM, "vae_lebm" (Han, Nijkamp, Zhou, Pang, Zhu, Wu, CVPR 2020,
"Joint Training of Variational Auto-Encoder and Latent Energy-Based Model", arXiv 2006.06059; official
code ``alexzhou907/vae_ebm``, ``train_cifar.py``).

Three joint distributions of (x, z):

* Q(x, z) = q_data(x) q_phi(z | x),  q_phi = N(mu(x), diag exp(logvar(x)))   (inference model);
* P(x, z) = N(z; 0, I) p_theta(x | z),  p_theta = N(g(z), sigma^2 I)           (generator);
* Pi(x, z) = pi_alpha(x, z) ∝ exp(-E_alpha(x, z))                              (the EBM on the joint).

Objective (a divergence triangle): min over theta, phi and max over alpha of

    Delta = KL(Q || P) + KL(P || Pi) - KL(Q || Pi).

log Z_alpha cancels between the two KL terms with Pi.  Per batch, three sequential updates as in the
official loop, with z_q ~ q(z | x) reparameterised and z_p ~ N(0, I):

1. E:  ``mean E(x, z_q) - mean E(g(z_p), z_p)``  (both inputs detached): lower the energy of
   inferred pairs, raise it on generated pairs;
2. I:  ``lam (rec + KL_mc) - mean E(x, z_q) + mean[-log q(z_q | x)]``: the phi-dependent part of
   KL(Q || P) - KL(Q || Pi) = E_Q[log q - log P(x, z)] - E_Q[log q + E(x, z)] + const.  The official
   code writes the last two terms as ``-(E_T + (-log_q_z))`` where its variable ``log_q_z`` holds
   the *negative* log-density mean ``-log q`` (its ``diag_normal_NLL``); KL_mc = mean[log q(z_q|x) -
   log N(z_q)] is the Monte Carlo KL at the same draws;
3. G:  ``lam rec' + mean E(g(z_p), z_p)`` with the same z_p as in step 1 and a fresh, detached
   z_q' ~ q(z | x) for the reconstruction ``rec'`` (KL(Q || P) + KL(P || Pi) in theta).

``rec = sum_pixels (g(z_q) - x)^2 / (2 sigma^2)``, averaged over the batch: at the default
sigma^2 = 1/2 it is the official ``MSELoss(size_average=False) / B``.  Energy: ``E = softplus(e(x, z))``
(official ``energy_form='softplus'``; ``"identity"`` leaves ``e`` as it is), e a two-tower network (an
x tower and a z tower, concatenated, then a two-layer head; LeakyReLU(0.1) and spectral norm on every
layer, as the official ``_netE``).  Adam with betas (0, 0.9) (official ``beta1 = 0`` and its
``betas=(beta1, 0.9)``), lr E 1e-4, G 3e-4, I 3e-4, weight decay 1e-4 on G and I.

Capabilities:

* ``sample``: the decoder mean g(z), z ~ N(0, I) (the papers' sample figures);
* ``infer``: mu(x); ``reconstruct``: g(mu(x));
* ``log_joint``, ``log_prior``, ``proposal``: the VAE part, log N(x; g(z), sigma^2 I) + log N(z; 0, I)
  (normalised, data-scale nats) and q(z | x), so the log-likelihood metric gets an IWAE bound of
  p_theta(x) = ∫ N(z) p_theta(x | z) dz.  The EBM Pi is not a prior on z and has no tractable
  normaliser; it does not enter these densities;
* ``anomaly_score``: the energy ``E(x, mu(x))``, the score of the official ``get_auroc`` (which ranks
  in-distribution data by ``-E(x, mu(x))``); it is the quantity the paper proposes for out-of-sample
  detection, the EBM being the model trained to separate data pairs from everything else.

Deviations from the official code:
* Networks sized for CPU: MLP encoder, decoder and x tower for vector data and 8x8 images, the 28/32-px
  conv nets of :mod:`benchbed_ebm.nets` otherwise; no batch norm in G and I (the project's nets use none);
  the z tower is an MLP (the official 1x1 convs on a 1x1 map are the same thing); nz 32 instead of 100.
* No learning-rate decay (0.998 per epoch officially) and no gradient clipping (off by default there too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Interval
from torch import nn
from torch.distributions import Independent, Normal
from torch.nn.utils.parametrizations import spectral_norm

from benchbed.blocks.gaussian import gaussian_log_lik, normal_log_prob, std_normal_log_prob
from benchbed.blocks.nets import mlp
from benchbed.blocks.scaling import DataScale
from benchbed.contracts import Batch, SetupContext
from benchbed.model import LatentModel
from benchbed_ebm.nets import Arch, Decoder, Encoder, uses_conv

EnergyForm = Literal["softplus", "identity"]


class LeakyReLU01(nn.LeakyReLU):
    """LeakyReLU with slope 0.1, the official ``_netE`` activation (usable as ``mlp``'s ``act``)."""

    def __init__(self) -> None:
        super().__init__(0.1)


def _conv_init(m: nn.Module) -> None:
    """The official ``weights_init``: conv weights ~ N(0, 0.02)."""
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)


def _spectral(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every Linear and conv layer of ``module`` (in place); returns it."""
    for child in list(module.modules()):
        if isinstance(child, nn.Linear | nn.Conv2d):
            spectral_norm(child)
    return module


class JointEnergy(nn.Module):
    """``e(x_m, z)``: ``[B, *D], [B, d] -> [B]``, an x tower and a z tower concatenated, then a head.

    x tower: :class:`benchbed_ebm.nets.Encoder` to ``width`` features (conv for 28/32-px images, MLP
    otherwise); z tower: MLP ``d -> width -> width``; head: ``2 width -> 2 width -> 1``.
    """

    def __init__(self, shape: tuple[int, ...], latent_dim: int, *, width: int, trunk_width: int,
                 conv: bool | None = None) -> None:
        super().__init__()
        self.x_tower = Encoder(shape, width, width=trunk_width, conv=conv)
        self.z_tower = mlp([latent_dim, width, width], act=LeakyReLU01)
        self.head = nn.Sequential(LeakyReLU01(), mlp([2 * width, 2 * width, 1], act=LeakyReLU01))

    def forward(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.x_tower(x_m), self.z_tower(z)], dim=-1)
        out: torch.Tensor = self.head(h).squeeze(-1)
        return out


class VAELEBM(LatentModel):
    """VAE (encoder, Gaussian decoder, N(0, I) prior) trained jointly with an EBM on (x, z).

    Latent codes are ``[B, latent_dim]``.

    Args:
        latent_dim: nz (official 100).
        hidden: MLP widths of encoder and decoder (vectors, 8x8 images).
        channels: conv width of encoder and decoder (28/32-px images).
        arch: ``"auto"`` (conv nets for 28/32-px images, MLPs otherwise), ``"mlp"`` or ``"conv"``.
        energy_width: width of the EBM's towers and half the width of its head.
        energy_form: ``"softplus"`` (official) or ``"identity"``: E = softplus(e) or E = e.
        obs_var: sigma^2 of p(x | z) on the working scale (1/2 makes ``rec`` the official summed squared error).
        lam: weight of the VAE terms (official ``lamb`` 1).
        e_lr, g_lr, i_lr: Adam learning rates (official 1e-4, 3e-4, 3e-4).
        beta1, beta2: Adam betas of all three (official 0, 0.9).
        g_decay, i_decay: weight decay of G and I (official 1e-4 each).
    """

    capabilities = frozenset({"sample", "infer", "reconstruct", "log_joint", "log_prior", "proposal",
                              "anomaly_score"})

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 32,
        hidden: Annotated[int, Gt(0)] = 200,
        channels: Annotated[int, Gt(0)] = 48,
        arch: Arch = "auto",
        energy_width: Annotated[int, Gt(0)] = 128,
        energy_form: EnergyForm = "softplus",
        obs_var: Annotated[float, Gt(0)] = 0.5,
        lam: Annotated[float, Ge(0)] = 1.0,
        e_lr: Annotated[float, Gt(0)] = 1e-4,
        g_lr: Annotated[float, Gt(0)] = 3e-4,
        i_lr: Annotated[float, Gt(0)] = 3e-4,
        beta1: Annotated[float, Interval(ge=0, lt=1)] = 0.0,
        beta2: Annotated[float, Interval(ge=0, lt=1)] = 0.9,
        g_decay: Annotated[float, Ge(0)] = 1e-4,
        i_decay: Annotated[float, Ge(0)] = 1e-4,
    ) -> None:
        super().__init__()
        if energy_form not in ("softplus", "identity"):
            raise ValueError(f"model 'vae_lebm': parameter 'energy_form' must be 'softplus' or 'identity', "
                             f"got {energy_form!r}")
        self.latent_dim, self.hidden, self.channels, self.arch = latent_dim, hidden, channels, arch
        self.energy_width, self.energy_form = energy_width, energy_form
        self.obs_var, self.lam = obs_var, lam
        self.e_lr, self.g_lr, self.i_lr = e_lr, g_lr, i_lr
        self.beta1, self.beta2, self.g_decay, self.i_decay = beta1, beta2, g_decay, i_decay

    def setup(self, ctx: SetupContext) -> None:
        info = ctx.info
        conv = uses_conv(info.shape, self.arch)
        width = self.channels if conv else self.hidden
        self.scale = DataScale(info, train=ctx.train)
        self.enc = Encoder(info.shape, 2 * self.latent_dim, width=width, conv=conv)
        self.gen = Decoder(self.latent_dim, info.shape, width=width, image=info.kind == "image", conv=conv)
        self.ebm = JointEnergy(tuple(info.shape), self.latent_dim, width=self.energy_width, trunk_width=width,
                               conv=conv)
        self.apply(_conv_init)
        _spectral(self.ebm)
        self.to(ctx.device)
        self.device = ctx.device
        betas = (self.beta1, self.beta2)
        self.optimizers = {
            "e": torch.optim.Adam(self.ebm.parameters(), lr=self.e_lr, betas=betas),
            "g": torch.optim.Adam(self.gen.parameters(), lr=self.g_lr, betas=betas, weight_decay=self.g_decay),
            "i": torch.optim.Adam(self.enc.parameters(), lr=self.i_lr, betas=betas, weight_decay=self.i_decay),
        }

    # ------------------------------------------------------------------ pieces
    def _q(self, x_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | x), each ``[B, d]``."""
        mu, logvar = self.enc(x_m).chunk(2, dim=-1)
        return mu, logvar

    def energy(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``E(x_m, z)`` ``[B]`` (working-scale x): softplus(e) or e, by ``energy_form``."""
        e = self.ebm(x_m, z)
        return F.softplus(e) if self.energy_form == "softplus" else e

    def _rec(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``sum_pixels (g(z) - x_m)^2 / (2 sigma^2)`` per example ``[B]``."""
        return ((self.gen(z) - x_m) ** 2).flatten(1).sum(1) / (2.0 * self.obs_var)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        """Zero every gradient, backpropagate ``loss`` and step optimiser ``name`` only."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[name].step()

    # ------------------------------------------------------------------ training
    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        x_m = self.scale.to_model(batch.x)
        n = x_m.shape[0]
        # 1. E: inferred pairs down, generated pairs up (log Z cancels).
        mu, logvar = self._q(x_m)
        std = torch.exp(0.5 * logvar)
        z_q = mu + std * torch.randn_like(mu)
        z_p = torch.randn(n, self.latent_dim, device=self.device)
        x_g = self.gen(z_p)
        e_t, e_f = self.energy(x_m, z_q.detach()).mean(), self.energy(x_g.detach(), z_p).mean()
        self._step("e", e_t - e_f)
        # 2. I: lam (rec + KL_mc) - E_T + mean[-log q], the phi-part of KL(Q||P) - KL(Q||Pi).
        rec = self._rec(x_m, z_q).mean()
        neg_log_q = -normal_log_prob(z_q, mu, std).mean()
        kl_mc = -neg_log_q - std_normal_log_prob(z_q).mean()
        e_t_i = self.energy(x_m, z_q).mean()
        loss_i = self.lam * (rec + kl_mc) - e_t_i + neg_log_q
        self._step("i", loss_i)
        # 3. G: lam rec' (fresh detached z_q') + E(g(z_p), z_p), the theta-part of KL(Q||P) + KL(P||Pi).
        with torch.no_grad():
            mu2, logvar2 = self._q(x_m)
            z_q2 = mu2 + torch.exp(0.5 * logvar2) * torch.randn_like(mu2)
        rec_g = self._rec(x_m, z_q2).mean()
        e_f_g = self.energy(self.gen(z_p), z_p).mean()
        self._step("g", self.lam * rec_g + e_f_g)
        return {"loss_e": (e_t - e_f).item(), "e_t": e_t.item(), "e_f": e_f.item(), "rec": rec.item(),
                "kl_mc": kl_mc.item(), "loss_i": loss_i.item(), "loss_g": (self.lam * rec_g + e_f_g).item()}

    # ------------------------------------------------------------------ capabilities
    def sample(self, n: int) -> torch.Tensor:
        """``[n, *D]``: the decoder mean g(z), z ~ N(0, I), on the data scale."""
        return self.scale.to_data(self.gen(torch.randn(n, self.latent_dim, device=self.device)))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The inference model's mean ``mu(x)``: ``[B, d]``."""
        return self._q(self.scale.to_model(x))[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``g(mu(x))`` on the data scale ``[B, *D]``."""
        return self.scale.to_data(self.gen(self.infer(x)))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """``log N(z; 0, I)`` ``[B]`` (normalised)."""
        return std_normal_log_prob(z)

    def sample_prior_base(self, n: int) -> torch.Tensor:
        """Exact prior draws ``[n, d]`` from N(0, I)."""
        return torch.randn(n, self.latent_dim, device=self.device)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log N(x; g(z), sigma^2 I) + log N(z; 0, I)`` in data-scale nats ``[B]`` (the VAE part;
        the EBM does not enter it)."""
        x_m = self.scale.to_model(x)
        log_lik = gaussian_log_lik(x_m, self.gen(z), 0.5 * math.log(self.obs_var))
        return log_lik + self.scale.log_det() + std_normal_log_prob(z)

    def proposal(self, x: torch.Tensor) -> Independent:
        """q(z | x) = N(mu, diag exp(logvar)): batch ``[B]``, event ``[d]``."""
        mu, logvar = self._q(self.scale.to_model(x))
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """The energy ``E(x, mu(x))`` ``[B]`` (the official OOD score); higher = more anomalous."""
        x_m = self.scale.to_model(x)
        return self.energy(x_m, self._q(x_m)[0])

