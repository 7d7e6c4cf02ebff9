"""Multi-layer generator with a joint latent-space EBM prior, "hlebm" (Cui, Wu, Han; ``docs/models.md#hlebm``).

Model (CVPR'23, arXiv 2306.06323; official ``jcui1224/hierarchical-joint-ebm/joint-training``)::

    p(z) ∝ exp(sum_l f_l(z_l)) prod_{l<L} p(z_l | z_{l+1}) N(z_L; 0, I)      (benchbed_ebm.joint_prior)
    p(x | z) = N(x; g(z_1), sigma^2 I),   sigma = 0.3 on the [-1, 1] image scale

Two learning schemes (``scheme``):

* ``"mle"`` (CVPR'23): per batch, short-run Langevin from N(0, I) *jointly over all layers* for the
  posterior (40 steps, s = 0.1, target log p(x|z_1) + log p(z)) and the prior (60 steps, s = 0.4,
  target log p(z)); then g minimises ``sum_pixels (x - g(z_1^+))^2 / (2 sigma^2)`` (batch mean),
  the conditionals minimise ``log p(z^-_cond) - log p(z^+_cond)`` and each f_l minimises
  ``f_l(z^-) - f_l(z^+)`` (+ = posterior, - = prior samples): the MLE gradient, in which Z cancels.
* ``"variational"`` (ICCV'23-style, ``docs/models.md#hlebm``): a bottom-up inference model q(z|x)
  (:mod:`benchbed_ebm.inference`) replaces posterior MCMC.  g and q minimise the negative ELBO with
  the EBM prior, ``E_q[rec/(2 sigma^2) + log q(z|x) - log base(z) - sum_l f_l(z_l)]`` (log Z does not
  depend on g or q), while the f_l and the conditionals take the same contrastive step as in MLE
  with q-samples as positives (the conditionals enter log Z, so their ELBO gradient is exactly this).

Where the chains run (``mcmc_space``): ``"z"`` moves the codes themselves, as the official code does;
``"residual"`` moves the standardised residuals ``u`` of the top-down hierarchy, whose base is N(0, I)
(same target distribution, see :mod:`benchbed_ebm.joint_prior`).  ``"auto"`` (default) picks ``"z"``
for MLE and ``"residual"`` for the variational scheme: on digits, z-space prior chains at s = 0.4
diverge once the amortised posterior has shrunk a sigma_l, while residual-space *posterior* chains
under MLE let sigma_l run away (reconstructions no better than the mean image;
``docs/models-notes.md#hlebm``).

Linear skip in the conditionals (``prior_skip``, ``inference_skip``; both on by default): every
mean of a top-down conditional and of a bottom-up inference step gets a bias-free linear path,
``mu_l(z_{l+1}) = W_l z_{l+1} + mlp(z_{l+1})`` and ``m_l(z_l) = W'_l z_l + mlp(z_l)``, W (semi-)orthogonal
at init (:class:`benchbed_ebm.gaussian.ConditionalGaussian`, ``skip=True``); sigma is unchanged.  Why:
with MLP-only means, mu_l(z_{l+1}) is nearly constant at init, so p(z_1 | z_2) ~ N(c, s^2) ignores z_2 and
q(z_2 | z_1) ignores z_1: z_1 trains as a plain VAE code and z_2 stays inactive (the top-layer
collapse of bottom-up hierarchies, Sønderby et al. 2016 (LVAE); in the spirit of the residual top-down
parameterisations of LVAE/NVAE, Vahdat & Kautz 2020, where the upper code carries through and the
lower layer is a refinement of it).  With the skip, z_2 starts as a projection of z_1 and z_1 | z_2 as
a residual around it, so the upper layer keeps the global content, as Cui et al. report for their
hierarchy.  The effect of the skip on which layer carries what (``tests/ebm/test_hlebm.py``,
``resample_effect``) is measured in ``docs/models-notes.md#hlebm``.
``prior_skip=inference_skip=False`` is the official nets.

Chains' cost (engine option ``fused``, ``SetupContext.engine``; ``None`` = on): the prior and posterior
chains get a log-density whose gradient is written out layer by layer
(:meth:`benchbed_ebm.joint_prior.JointLatentPrior.grad_fn`, over the hand-written MLP VJPs of
:mod:`benchbed.blocks.fused`; a conv generator goes through a local autograd graph), and all
networks are frozen while the chains run (:func:`benchbed.blocks.chains.run_chains`): one tape-free
gradient evaluation per step and no weight-gradient bookkeeping, as LEBM's chains.  Same values and
gradients as autograd to floating-point rounding; the same start points and noise (global RNG).
``fused=False`` (``--no-fused``) keeps the plain autograd closures (``benchmarks/bench_multilayer_chains.py``
compares the two in one process).

Outlier score (both papers, LEBM protocol): ``-log p(x, z)`` unnormalised, at the inferred z
(posterior Langevin for MLE; the inference model's mean code for the variational scheme, as in
ICCV'23 "z from the inference model").

Deviations from the official code (written out, as the task asks):
* The top layer's reference density is exactly N(0, I); the code's ``Normal`` adds 0.01 to its std.
* CPU scaling: latent sizes (32, 16) instead of (128, 100); MLP generator/inference nets for vectors
  and 8x8 images (conv nets for 28/32 px, with ``channels`` instead of ngf = 64 x 16 at the first layer).
* Vector data are standardised with the training split's statistics (``benchbed_ebm.scaling``).
* The variational scheme uses Cui et al.'s 2-layer network structure with the ICCV'23 ELBO objective
  (``docs/models.md#hlebm``) and the CVPR'23 learning rates (the ICCV'23 code's 3e-4 / beta1 = 0 /
  spectral-norm settings belong to its different single-EBM architecture and are not copied).
* The linear skip in each conditional's mean (above); the official ``_netGzi_mlp`` / ``_netIzi_mlp``
  are MLP-only (``prior_skip=False, inference_skip=False``).
* One Adam optimiser per network group instead of one per network (Adam is per-parameter, so this
  is the same update); no learning-rate decay (the official code has none either).
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Ge, Gt, MinLen

from benchbed.blocks.chains import run_chains
from benchbed.blocks.fused import GradFn, fused_log_density, is_dense_stack, jet
from benchbed.blocks.gaussian import LOG_2PI, std_normal_log_prob
from benchbed.blocks.partition import PartitionEstimate, log_partition_from_base
from benchbed.blocks.scaling import DataScale
from benchbed.contracts import Batch, Sampler, SetupContext
from benchbed.model import LatentModel
from benchbed_ebm.inference import BottomUpInference, BottomUpPosterior
from benchbed_ebm.joint_prior import JointLatentPrior
from benchbed_ebm.nets import Arch, Decoder, uses_conv

SCHEMES = ("mle", "variational")
MCMC_SPACES = ("auto", "z", "residual")

#: Official short-run settings (``train_cifar10.py``): prior 60 x 0.4, posterior 40 x 0.1.
PRIOR_DEFAULTS = {"n_steps": 60, "step_size": 0.4}
POSTERIOR_DEFAULTS = {"n_steps": 40, "step_size": 0.1}


class HLEBM(LatentModel):
    """Multi-layer generator + joint latent EBM prior.  See the module docstring for the objectives.

    Latent codes are flat: ``z [B, sum(latent_dims)] = cat(z_1, ..., z_L)``, bottom layer first.

    Args:
        arch: ``"auto"`` (conv nets for 28/32-px images, MLPs otherwise), ``"mlp"`` or ``"conv"``.
    """

    def __init__(
        self,
        *,
        scheme: str = "mle",
        mcmc_space: str = "auto",
        latent_dims: Annotated[tuple[Annotated[int, Gt(0)], ...], MinLen(2)] = (32, 16),
        llhd_sigma: Annotated[float, Gt(0)] = 0.3,
        hidden: Annotated[int, Gt(0)] = 200,
        channels: Annotated[int, Gt(0)] = 64,
        arch: Arch = "auto",
        cond_width: Annotated[int, Gt(0)] = 200,
        cond_layers: Annotated[int, Ge(0)] = 4,
        ebm_widths: Annotated[tuple[Annotated[int, Gt(0)], ...], MinLen(1)] = (200, 100),
        ebm_layers: Annotated[tuple[Annotated[int, Ge(0)], ...], MinLen(1)] = (3, 2),
        g_lr: Annotated[float, Gt(0)] = 1e-4,
        cond_lr: Annotated[float, Gt(0)] = 1e-4,
        e_lr: Annotated[float, Gt(0)] = 2e-5,
        i_lr: Annotated[float, Gt(0)] = 1e-4,
        prior_skip: bool = True,
        inference_skip: bool = True,
    ) -> None:
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"hlebm: scheme must be one of {SCHEMES}, got {scheme!r}")
        if len(latent_dims) < 2:
            raise ValueError(f"hlebm: latent_dims needs two or more layers, got {latent_dims!r}")
        if mcmc_space not in MCMC_SPACES:
            raise ValueError(f"hlebm: mcmc_space must be one of {MCMC_SPACES}, got {mcmc_space!r}")
        self.scheme = scheme
        # "auto": the official z-space chains for MLE; residual space for the variational scheme,
        # whose amortised posterior lets sigma_l(z_{l+1}) shrink until z-space chains at s = 0.4 blow up.
        self.mcmc_space = mcmc_space if mcmc_space != "auto" else ("z" if scheme == "mle" else "residual")
        self.latent_dims = tuple(latent_dims)
        self.llhd_sigma = llhd_sigma
        self.hidden, self.channels, self.arch = hidden, channels, arch
        self.cond_width, self.cond_layers = cond_width, cond_layers
        self.ebm_widths, self.ebm_layers = tuple(ebm_widths), tuple(ebm_layers)
        self.g_lr, self.cond_lr, self.e_lr, self.i_lr = g_lr, cond_lr, e_lr, i_lr
        self.prior_skip, self.inference_skip = prior_skip, inference_skip

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        caps = {"sample", "infer", "reconstruct", "log_joint", "log_prior", "log_partition", "anomaly_score"}
        return frozenset(caps | ({"proposal"} if self.scheme == "variational" else set()))

    # ------------------------------------------------------------------ setup and training
    def setup(self, ctx: SetupContext) -> None:
        if ctx.sampler is None:
            raise ValueError("hlebm: needs a sampler provider (ModelSpec uses_sampler=True)")
        shape = ctx.info.shape
        conv = uses_conv(shape, self.arch)
        width = self.channels if conv else self.hidden
        self.scale = DataScale(ctx.info, train=ctx.train)
        self.prior = JointLatentPrior(self.latent_dims, cond_width=self.cond_width, cond_layers=self.cond_layers,
                                      ebm_widths=self.ebm_widths, ebm_layers=self.ebm_layers,
                                      cond_skip=self.prior_skip)
        self.gen = Decoder(self.latent_dims[0], shape, width=width, image=ctx.info.kind == "image", conv=conv)
        self.prior_sampler = ctx.sampler("prior", **PRIOR_DEFAULTS)
        if self.scheme == "mle":
            self.post_sampler = ctx.sampler("posterior", **POSTERIOR_DEFAULTS)
        else:
            self.inference = BottomUpInference(shape, self.latent_dims, width=width, cond_width=self.cond_width,
                                               cond_layers=self.cond_layers, skip=self.inference_skip, conv=conv)
        self.to(ctx.device)
        self.device = ctx.device
        self.fused = ctx.engine.fused is not False  # None = on (EngineOptions)
        self.optimizers = {
            "g": torch.optim.Adam(self.gen.parameters(), lr=self.g_lr),
            "cond": torch.optim.Adam(self.prior.conds.parameters(), lr=self.cond_lr),
            "e": torch.optim.Adam(self.prior.energies.parameters(), lr=self.e_lr),
        }
        if self.scheme == "variational":
            self.optimizers["i"] = torch.optim.Adam(self.inference.parameters(), lr=self.i_lr)

    def _neg_rec(self, x_m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``-||x_m - g(z_1)||^2 / (2 sigma^2)`` per example, ``[B]`` (Gaussian constant left out)."""
        z1 = self.prior.split(z)[0]
        err = (x_m - self.gen(z1)).flatten(1)
        return -(err * err).sum(dim=1) / (2.0 * self.llhd_sigma**2)

    def _mcmc(self, sampler: Sampler, n: int, x_m: torch.Tensor | None = None) -> torch.Tensor:
        """Short-run chains from N(0, I), jointly over all layers: ``[n, Z]`` (detached).

        Target: the prior ``log p(z)``, plus ``log p(x | z_1)`` for the posterior of ``x_m``
        (``[n, *D]`` model scale).  In ``"z"`` space the chain moves z itself (official); in
        ``"residual"`` space it moves ``u = cat(eps_l)``, whose base is N(0, I) (see
        ``JointLatentPrior``), then maps back to z.  Both engine paths draw ``u0`` and the chains'
        noise from the global RNG in the same order, so they differ only by rounding.
        """
        u0 = torch.randn(n, self.prior.dim, device=self.device)
        if self.fused:
            # One tape-free gradient per step; every net frozen (no weight-gradient work).
            fn = self.prior.grad_fn(self.mcmc_space, bottom=None if x_m is None else self._likelihood_fn(x_m))
            u = run_chains(sampler, fused_log_density(fn), u0, self.prior, self.gen).z
        else:
            u = self._mcmc_plain(sampler, u0, x_m)
        if self.mcmc_space == "z":
            return u
        with torch.no_grad():
            return self.prior.from_residual(u)

    def _mcmc_plain(self, sampler: Sampler, u0: torch.Tensor, x_m: torch.Tensor | None) -> torch.Tensor:
        """The plain autograd path (``fused=False``): the sampler differentiates closures over the
        modules, weights left trainable.  Returns the chains' end points in the chain's space."""

        def tilt(z: torch.Tensor) -> torch.Tensor:  # the non-Gaussian part: sum_l f_l [+ log p(x|z_1)]
            return self.prior.energy(z) if x_m is None else self._neg_rec(x_m, z) + self.prior.energy(z)

        if self.mcmc_space == "z":
            return sampler.sample(lambda z: tilt(z) + self.prior.base_log_prob(z), u0).z.detach()

        def log_density_u(u: torch.Tensor) -> torch.Tensor:
            return tilt(self.prior.from_residual(u)) + std_normal_log_prob(u)

        return sampler.sample(log_density_u, u0).z.detach()

    def _likelihood_fn(self, x_m: torch.Tensor) -> GradFn:
        """Fused ``log p(x | z_1)`` up to its constant, ``-||x_m - g(z_1)||^2 / (2 sigma^2)`` (as
        :meth:`_neg_rec`), and its gradient ``J_g(z_1)^T (x_m - g(z_1)) / sigma^2``: a GradFn on z_1 [B, d_1].

        The MLP generator's VJP is hand-written; a conv generator's goes through autograd (its
        arithmetic dominates either way).
        """
        g_jet = jet(self.gen.net if is_dense_stack(self.gen.net) else self.gen)
        x_flat = x_m.reshape(x_m.shape[0], -1)
        two_var = 2.0 * self.llhd_sigma**2

        def fn(z1: torch.Tensor, need_value: bool, need_grad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            g, tape = g_jet.forward(z1, need_grad)
            assert g is not None  # need_out defaults to True
            r = x_flat - g.reshape(g.shape[0], -1)
            value = -(r * r).sum(dim=1) / two_var if need_value else None
            grad = g_jet.vjp(tape, (r * (2.0 / two_var)).reshape(g.shape)) if need_grad else None
            return value, grad

        return fn

    def _prior_mcmc(self, n: int) -> torch.Tensor:
        return self._mcmc(self.prior_sampler, n)

    def _posterior_mcmc(self, x_m: torch.Tensor) -> torch.Tensor:
        return self._mcmc(self.post_sampler, x_m.shape[0], x_m)

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        x_m = self.scale.to_model(batch.x)
        z_neg = self._prior_mcmc(x_m.shape[0])
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self.scheme == "mle":
            z_pos = self._posterior_mcmc(x_m)
            loss_g = -self._neg_rec(x_m, z_pos).mean()
            loss_g.backward()
            stats = {"loss_g": loss_g.item()}
        else:
            q = self.inference.posterior(x_m)
            z_q = q.rsample()
            # Negative ELBO with the EBM prior; log Z is constant in (g, q).
            nelbo = (-self._neg_rec(x_m, z_q) + q.log_prob(z_q) - self.prior.log_prob(z_q)).mean()
            nelbo.backward()
            # The prior's nets learn contrastively below, not from the ELBO's one-sided gradient.
            for p in self.prior.parameters():
                p.grad = None
            z_pos = z_q.detach()
            stats = {"nelbo": nelbo.item()}
        # Contrastive MLE step for the parts of the prior inside log Z (Cui et al.: E and p(z1|z2)).
        f_pos, f_neg = self.prior.energy(z_pos).mean(), self.prior.energy(z_neg).mean()
        c_pos, c_neg = self.prior.cond_log_prob(z_pos).mean(), self.prior.cond_log_prob(z_neg).mean()
        ((f_neg - f_pos) + (c_neg - c_pos)).backward()
        for opt in self.optimizers.values():
            opt.step()
        with torch.no_grad():
            mse = float(((x_m - self.gen(self.prior.split(z_pos)[0])) ** 2).mean())
        return {**stats, "loss_e": (f_neg - f_pos).item(), "loss_cond": (c_neg - c_pos).item(),
                "f_pos": f_pos.item(), "f_neg": f_neg.item(), "mse_model_scale": mse}

    # ------------------------------------------------------------------ capabilities
    def sample(self, n: int) -> torch.Tensor:
        """``n`` samples ``[n, *D]``: prior short-run Langevin, then the mean of p(x | z_1)."""
        return self.decode(self._prior_mcmc(n))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, Z] -> x [B, *D]`` in data scale (the mean of p(x | z_1))."""
        return self.scale.to_data(self.gen(self.prior.split(z)[0]))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``[B, Z]``: posterior Langevin (MLE) or the inference model's mean code."""
        x_m = self.scale.to_model(x)
        if self.scheme == "mle":
            return self._posterior_mcmc(x_m)
        return self.inference.mean_code(x_m)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.infer(x))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log p(z)`` ``[B]`` (log Z left out)."""
        return self.prior.log_prob(z)

    def sample_prior_base(self, n: int) -> torch.Tensor:
        """Ancestral samples ``[n, Z]`` of the prior's Gaussian hierarchy (the EBM's base density)."""
        return self.prior.sample_base(n)

    def log_partition(self, n: int) -> PartitionEstimate:
        """``log Z ≈ logsumexp_j sum_l f_l(z_j) - log n``, z_j from the base.

        Biased low (``docs/models.md#log-likelihood-with-an-ebm-prior``).
        """
        return log_partition_from_base(self.prior.energy, self.prior.sample_base, n)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x | z) + log p(z)`` ``[B]`` in data-scale nats, the prior's log Z left out."""
        x_m = self.scale.to_model(x)
        d = x_m[0].numel()
        log_lik = self._neg_rec(x_m, z) - d * (0.5 * LOG_2PI + math.log(self.llhd_sigma))
        return log_lik + self.scale.log_det() + self.prior.log_prob(z)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """``-log p(x, z)`` (unnormalised) at the inferred ``z``; higher = more anomalous."""
        return -self.log_joint(x, self.infer(x))

    def proposal(self, x: torch.Tensor) -> BottomUpPosterior:
        """q(z | x) of the variational scheme (batch shape ``[B]``, event ``[Z]``)."""
        if self.scheme != "variational":
            raise AttributeError("hlebm: proposal() exists only for scheme='variational'")
        return self.inference.posterior(self.scale.to_model(x))

    # ------------------------------------------------------------------ hierarchy probe
    def sample_with_fixed(self, layer: int, n: int, k: int) -> torch.Tensor:
        """Decode ``n`` prior samples ``k`` times each, resampling only layer ``layer``'s code.

        Every layer is written as its standardised residual ``eps_l`` (``JointLatentPrior.residuals``);
        all residuals but ``eps_layer`` stay fixed and ``eps_layer`` is replaced by the residual of an
        independent prior sample (so it follows the learned prior, EBM tilt included).  The layers
        below are recomputed top-down, the layers above are unchanged.

        Args:
            layer: 1-based layer index, 1 = bottom (z_1), L = top.
        Returns:
            ``[n, k, *D]`` data-scale images.
        """
        if not 1 <= layer <= self.prior.n_layers:
            raise ValueError(f"hlebm.sample_with_fixed: layer must be in 1..{self.prior.n_layers}, got {layer}")
        base = self.prior.residuals(self._prior_mcmc(n))
        donors = self.prior.residuals(self._prior_mcmc(n * k))
        eps = [e.repeat_interleave(k, dim=0) for e in base]
        eps[layer - 1] = donors[layer - 1]
        x = self.decode(self.prior.from_residuals(eps))
        return x.reshape(n, k, *x.shape[1:])
