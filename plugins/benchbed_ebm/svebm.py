"""Latent EBM of symbol-vector coupling, "svebm" (Pang & Wu, ICML 2021; Pang et al. 2020; ``docs/models.md#svebm``).

Model (official ``bpucla/ibebm/semi_sup_classification.py``)::

    p(y, z) ∝ exp(<y, f(z)>) N(z; 0, I),   y one-hot over K classes, f: R^d -> R^K (an MLP)
    p(z)    ∝ exp(F(z)) N(z; 0, I),        F(z) = logsumexp_k f_k(z)
    p(y|z)  = softmax(f(z))                (classification: y_hat = argmax f(mu(x)))
    p(x|z)  = N(x; g(z), sigma^2 I),       q(z|x) = N(mu(x), diag exp(logvar(x)))

Semi-supervised step (per minibatch, as the official loop):

1. labelled: ``w_l * CE(softmax(f(mu(x_l))), y_l)`` updates f and q (w_l = 200), on a minibatch
   drawn with replacement from the labelled set;
2. unlabelled: z_q ~ q(z|x) (reparameterised), z_p from short-run prior Langevin
   (100 steps, s = 0.4, from N(0, I));
   g and q minimise ``rec/(2 sigma^2) + KL(q || N(0,I)) - F(z_q) - w_mi * I(y; z_q)``;
3. f minimises ``-F(z_q) + F(z_p) - w_mi * I(y; z_q)`` (the MLE gradient plus the MI term).

``I(y; z) ≈ H(E_z p(y|z)) - E_z H(p(y|z))`` over the batch (``compute_mi``), maximised (w_mi = 100).

Labelled examples: ``n_labels_per_class`` per
class chosen by :func:`benchbed_ebm.labels.select_labelled` from ``label_seed`` (the cell's seed
when ``label_seed`` is None) — the same rule the ``accuracy`` metric's reference row uses.

Chains' cost (engine option ``fused``, ``SetupContext.engine``; ``None`` = on): the prior chains get
``log p(z)`` with the gradient ``f'(z)^T softmax(f(z)) - z`` through the hand-written MLP VJP of
:func:`benchbed.blocks.fused.jet` (no autograd tape) and run with f frozen
(:func:`benchbed.blocks.chains.run_chains`): one tape-free gradient per step and no weight-gradient
bookkeeping, as LEBM's chains; same values to rounding, same noise.  ``fused=False`` keeps the plain
autograd closure ``log_prior`` (``benchmarks/bench_multilayer_chains.py`` compares the two).

Deviations from the official code:
* Data: images with a Gaussian likelihood (sigma = 0.3 on [-1, 1]) instead of the AGNews
  bag-of-words softmax decoder; MLP nets (conv for 28/32 px) sized for CPU (nz 32 instead of 100,
  hidden 200 instead of 2000).  q keeps the official Dropout(0.5) after both hidden layers
  (``enc_dropout``; 0 removes it), active in training only.
* Learning rate of f raised from 1e-5 to 1e-4 (and its weight decay kept at 1e-3): the official
  schedule runs ~120k steps; the suite's few thousand steps leave a 1e-5 classifier head untrained.
* No learning-rate decay (0.998 per epoch officially; negligible over a few thousand steps).
* Prior Langevin includes the N(0, I) term in the log density handed to the sampler, as the
  official ``sample_langevin_prior_z`` does.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Interval
from torch.distributions import Independent, Normal

from benchbed.blocks.chains import run_chains
from benchbed.blocks.fused import GradFn, fused_log_density, jet
from benchbed.blocks.gaussian import LOG_2PI, kl_to_std_normal, std_normal_log_prob
from benchbed.blocks.nets import mlp
from benchbed.blocks.partition import PartitionEstimate, log_partition_from_base
from benchbed.blocks.scaling import DataScale
from benchbed.contracts import Batch, SetupContext
from benchbed.model import LatentModel
from benchbed_ebm.labels import LabelledSubset
from benchbed_ebm.nets import Arch, Decoder, Encoder, uses_conv

#: Official prior Langevin (``e_l_steps=100``, ``e_l_step_size=0.4``).
PRIOR_DEFAULTS = {"n_steps": 100, "step_size": 0.4}


def mutual_information(logits: torch.Tensor, eps: float = 1e-15) -> torch.Tensor:
    """``H(mean_b p(y|z_b)) - mean_b H(p(y|z_b))`` for ``logits [B, K]`` (a scalar, nats)."""
    log_p = F.log_softmax(logits, dim=-1)
    p = log_p.exp()
    marginal = p.mean(dim=0)
    h_y = -(marginal * torch.log(marginal + eps)).sum()
    h_y_given_z = -(p * log_p).sum(dim=-1).mean()
    return h_y - h_y_given_z


class SVEBM(LabelledSubset, LatentModel):
    """Symbol-vector coupling latent EBM, trained semi-supervised.  Latent codes are ``[B, latent_dim]``.

    Args:
        arch: ``"auto"`` (conv nets for 28/32-px images, MLPs otherwise), ``"mlp"`` or ``"conv"``.
        enc_dropout: dropout after each hidden layer of the inference network (official 0.5).
    """

    capabilities = frozenset({"sample", "infer", "reconstruct", "classify", "log_prior", "log_joint",
                              "log_partition", "proposal", "anomaly_score"})

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 32,
        n_labels_per_class: Annotated[int, Gt(0)] = 10,
        label_seed: int | None = 0,
        llhd_sigma: Annotated[float, Gt(0)] = 0.3,
        hidden: Annotated[int, Gt(0)] = 200,
        channels: Annotated[int, Gt(0)] = 64,
        arch: Arch = "auto",
        ebm_width: Annotated[int, Gt(0)] = 200,
        enc_dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
        labeled_weight: Annotated[float, Ge(0)] = 200.0,
        mi_weight: Annotated[float, Ge(0)] = 100.0,
        e_lr: Annotated[float, Gt(0)] = 1e-4,
        g_lr: Annotated[float, Gt(0)] = 1e-4,
        i_lr: Annotated[float, Gt(0)] = 1e-4,
        e_decay: Annotated[float, Ge(0)] = 1e-3,
        i_decay: Annotated[float, Ge(0)] = 2e-3,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.n_labels_per_class = n_labels_per_class
        self.label_seed = label_seed
        self.llhd_sigma = llhd_sigma
        self.hidden, self.channels, self.ebm_width, self.arch = hidden, channels, ebm_width, arch
        self.enc_dropout = enc_dropout
        self.labeled_weight, self.mi_weight = labeled_weight, mi_weight
        self.e_lr, self.g_lr, self.i_lr = e_lr, g_lr, i_lr
        self.e_decay, self.i_decay = e_decay, i_decay

    # ------------------------------------------------------------------ setup
    def setup(self, ctx: SetupContext) -> None:
        info = ctx.info
        self._require_labels(ctx, "svebm")
        if ctx.sampler is None:
            raise ValueError("svebm: needs a sampler provider (ModelSpec uses_sampler=True)")
        conv = uses_conv(info.shape, self.arch)
        width = self.channels if conv else self.hidden
        self.n_classes = info.n_classes
        self.scale = DataScale(info, train=ctx.train)
        # Official encoder: Dropout(0.5) after both hidden layers, the classifier path's regulariser.
        self.enc = Encoder(info.shape, 2 * self.latent_dim, width=width, conv=conv, dropout=self.enc_dropout)
        self.gen = Decoder(self.latent_dim, info.shape, width=width, image=info.kind == "image", conv=conv)
        # f: R^d -> R^K, official 100 -> 200 -> 200 -> K (nz -> ndf -> ndf -> nez), LeakyReLU 0.2.
        self.ebm = mlp([self.latent_dim, self.ebm_width, self.ebm_width, self.n_classes])
        self.prior_sampler = ctx.sampler("prior", **PRIOR_DEFAULTS)
        self._choose_labelled(ctx)
        self.to(ctx.device)
        self.device = ctx.device
        self.fused = ctx.engine.fused is not False  # None = on (EngineOptions)
        self._take_labelled()
        self.optimizers = {
            "e": torch.optim.Adam(self.ebm.parameters(), lr=self.e_lr, weight_decay=self.e_decay, betas=(0.9, 0.999)),
            "g": torch.optim.Adam(self.gen.parameters(), lr=self.g_lr, betas=(0.5, 0.999)),
            "i": torch.optim.Adam(self.enc.parameters(), lr=self.i_lr, weight_decay=self.i_decay, betas=(0.9, 0.999)),
        }

    # ------------------------------------------------------------------ pieces
    def _q(self, x_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z|x), each ``[B, d]``."""
        mu, logvar = self.enc(x_m).chunk(2, dim=-1)
        return mu, logvar

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``F(z) = logsumexp_k f_k(z)``: ``[B, d] -> [B]``."""
        return torch.logsumexp(self.ebm(z), dim=-1)

    def _prior_grad_fn(self) -> GradFn:
        """Fused ``log p(z) = logsumexp_k f_k(z) + log N(z; 0, I)`` (as :meth:`log_prior`) and its
        gradient ``f'(z)^T softmax(f(z)) - z``: ``z [B, d] -> ([B] | None, [B, d] | None)``, no tape."""
        f_jet = jet(self.ebm)

        def fn(z: torch.Tensor, need_value: bool, need_grad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            logits, tape = f_jet.forward(z, need_grad)
            assert logits is not None  # need_out defaults to True
            value = torch.logsumexp(logits, dim=-1) + std_normal_log_prob(z) if need_value else None
            grad = f_jet.vjp(tape, torch.softmax(logits, dim=-1)) - z if need_grad else None
            return value, grad

        return fn

    def _prior_mcmc(self, n: int) -> torch.Tensor:
        """Short-run prior chains from N(0, I): ``[n, d]`` (detached).  Both engine paths draw z0 and
        the noise from the global RNG in the same order, so they differ only by rounding."""
        z0 = torch.randn(n, self.latent_dim, device=self.device)
        if self.fused:  # one tape-free gradient per step, f frozen (no weight-gradient work)
            return run_chains(self.prior_sampler, fused_log_density(self._prior_grad_fn()), z0, self.ebm).z
        return self.prior_sampler.sample(self.log_prior, z0).z.detach()

    def _rec(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``||x_m - g(z)||^2 / (2 sigma^2)`` per example ``[B]``."""
        err = (x_m - self.gen(z)).flatten(1)
        return (err * err).sum(dim=1) / (2.0 * self.llhd_sigma**2)

    # ------------------------------------------------------------------ training
    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        # 1. labelled minibatch (drawn with replacement, as ``sample_labeled_data``): updates f and q.
        ce = self.labelled_cross_entropy(self.classify, batch.x.shape[0])
        (self.labeled_weight * ce).backward()
        self.optimizers["e"].step()
        self.optimizers["i"].step()
        # 2. unlabelled minibatch: g and q by the ELBO with the EBM prior and the MI bonus.
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        x_m = self.scale.to_model(batch.x)
        mu, logvar = self._q(x_m)
        z_q = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        z_p = self._prior_mcmc(x_m.shape[0])
        rec, kl = self._rec(x_m, z_q).mean(), kl_to_std_normal(mu, logvar).mean()
        f_q = self.neg_energy(z_q).mean()
        mi = mutual_information(self.ebm(z_q))
        (rec + kl - f_q - self.mi_weight * mi).backward()
        self.optimizers["g"].step()
        self.optimizers["i"].step()
        # 3. the EBM: positive phase on q-samples, negative phase on prior Langevin samples.
        self.optimizers["e"].zero_grad(set_to_none=True)
        z_pos = z_q.detach()
        f_pos, f_neg = self.neg_energy(z_pos).mean(), self.neg_energy(z_p).mean()
        mi_e = mutual_information(self.ebm(z_pos))
        (f_neg - f_pos - self.mi_weight * mi_e).backward()
        self.optimizers["e"].step()
        return {"ce_labelled": ce.item(), "rec": rec.item(), "kl": kl.item(), "mi": mi_e.item(),
                "f_pos": f_pos.item(), "f_neg": f_neg.item()}

    # ------------------------------------------------------------------ capabilities
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(y | z) at z = mu(x): ``[B, K]``."""
        mu, _ = self._q(self.scale.to_model(x))
        return self.ebm(mu)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The inference net's mean ``mu(x)``: ``[B, d]``."""
        return self._q(self.scale.to_model(x))[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.to_data(self.gen(self.infer(x)))

    def sample(self, n: int) -> torch.Tensor:
        """``[n, *D]``: prior Langevin on p(z) ∝ exp(F(z)) N(0, I), then g."""
        return self.scale.to_data(self.gen(self._prior_mcmc(n)))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log p(z) = F(z) + log N(z; 0, I)`` (log Z left out): ``[B]``."""
        return self.neg_energy(z) + std_normal_log_prob(z)

    def sample_prior_base(self, n: int) -> torch.Tensor:
        """Draws of the base N(0, I): ``[n, d]``."""
        return torch.randn(n, self.latent_dim, device=self.device)

    def log_partition(self, n: int) -> PartitionEstimate:
        """``log Z ≈ logsumexp_j F(z_j) - log n``, z_j ~ N(0, I).

        Biased low (``docs/models.md#log-likelihood-with-an-ebm-prior``).
        """
        return log_partition_from_base(self.neg_energy, self.sample_prior_base, n)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z) + log p(z)`` in data-scale nats, the prior's log Z left out: ``[B]``."""
        x_m = self.scale.to_model(x)
        d = x_m[0].numel()
        log_lik = -self._rec(x_m, z) - d * (0.5 * LOG_2PI + math.log(self.llhd_sigma))
        return log_lik + self.scale.log_det() + self.log_prior(z)

    def proposal(self, x: torch.Tensor) -> Independent:
        """q(z | x) = N(mu, diag exp(logvar)), batch ``[B]``, event ``[d]``."""
        mu, logvar = self._q(self.scale.to_model(x))
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """``-log p(x, z)`` (unnormalised) at ``z = mu(x)``, the latent-EBM papers' score."""
        return -self.log_joint(x, self.infer(x))
