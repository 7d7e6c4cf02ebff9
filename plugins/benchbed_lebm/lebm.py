"""Latent-space EBM prior, LEBM (Pang, Han, Nijkamp, Zhu, Wu, NeurIPS 2020).

Model:  p(x, z) = p_alpha(z) p_beta(x | z),
        p_alpha(z) = exp(f_alpha(z)) N(z; 0, I) / Z(alpha),   p_beta(x | z) = N(g_beta(z), sigma^2 I).

Learning (MLE with short-run MCMC, the paper's learning gradients):
    d/d alpha log p(x) = E_{p(z|x)}[grad f(z)] - E_{p_alpha(z)}[grad f(z)]   (Z(alpha) cancels)
    d/d beta  log p(x) = E_{p(z|x)}[grad_beta log p_beta(x|z)]
Both expectations use non-persistent short-run chains from N(0, I): the suite's "prior" sampler on
f(z) + log N(z) (official K0=60, s0=0.4) and its "posterior" sampler on
log p(x|z) + f(z) + log N(z) (K1=20, s1=0.1).  Losses follow the official code:
``loss_g = sum((g(z_post) - x)^2) / B`` and ``loss_e = -(f(z_post).mean() - f(z_prior).mean())``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt, Interval
from torch import nn

from benchbed.blocks.chains import accepts_generator, frozen, run_chains, run_concurrently
from benchbed.blocks.fused import fused_log_density, is_dense_stack, jet
from benchbed.blocks.gaussian import std_normal_log_prob
from benchbed.blocks.latent import GENERATOR_CAPABILITIES, DynamicsGenerator
from benchbed.blocks.nets import ARCHS, build_generator, resolve_arch
from benchbed.blocks.partition import PartitionEstimate, log_partition_from_base
from benchbed.contracts import Batch, Capability, SetupContext
from benchbed_lebm.nets import EnergyMLP, Ref32Generator


class LEBM(DynamicsGenerator):
    """Generator with a latent EBM prior, trained with short-run prior and posterior dynamics.

    Args:
        latent_dim: nz (official 100).
        arch: "ref32" (official 32x32 ConvT generator), or "auto"/"mlp"/"conv" (shared builders).
        hidden: MLP generator hidden widths (digits-sized default 100-256-256-D).
        ngf: width of the "ref32" generator.
        energy_hidden: widths of the energy MLP (official 200, 200).
        energy_activation: "gelu" (official), "lrelu" or "silu".
        obs_std: sigma of p(x|z) in the [-1, 1] working scale (official 0.3).
        prior_steps, prior_step_size: defaults of the "prior" sampler role (official 60, 0.4).
        posterior_steps, posterior_step_size: defaults of the "posterior" role (official 20, 0.1).
        lr_e, lr_g: Adam learning rates of the energy and the generator (official 2e-5, 1e-4).
        beta1, beta2: Adam betas of both (official 0.5, 0.999).
        lr_decay: learning-rate factor per epoch of the training split (official 0.998).
        infer_rounds: posterior sampler runs at test time (1 = the official K1 steps).
        partition_samples: default J for :meth:`log_partition`.

    Engine options (``SetupContext.engine``, not hyperparameters):

    * ``fused`` (``None`` = on): give the samplers log-densities with hand-written MLP gradients
      (:mod:`benchbed.blocks.fused`): the same values and gradients up to floating-point rounding.
    * ``concurrent_chains`` (``None`` = automatic: a CPU with >= 2 intra-op threads and an MLP
      generator): run the prior and posterior chains of a training step side by side in two
      threads, one intra-op thread each (the energy step after them on one intra-op thread, too,
      so that no OpenMP worker is left spinning into the next step).  It changes no number: the
      two chain sets always draw their noise from two per-step ``torch.Generator`` objects seeded
      from the global RNG (when both samplers accept ``generator``; otherwise they use the global
      RNG, one after the other).
    """

    model_name = "lebm"
    capabilities = GENERATOR_CAPABILITIES | {Capability.LOG_PARTITION}

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 100,
        arch: str = "auto",
        hidden: tuple[Annotated[int, Gt(0)], ...] = (256, 256),
        ngf: Annotated[int, Gt(0)] = 64,
        energy_hidden: tuple[Annotated[int, Gt(0)], ...] = (200, 200),
        energy_activation: str = "gelu",
        obs_std: Annotated[float, Gt(0)] = 0.3,
        prior_steps: Annotated[int, Ge(0)] = 60,
        prior_step_size: Annotated[float, Gt(0)] = 0.4,
        posterior_steps: Annotated[int, Ge(0)] = 20,
        posterior_step_size: Annotated[float, Gt(0)] = 0.1,
        lr_e: Annotated[float, Gt(0)] = 2e-5,
        lr_g: Annotated[float, Gt(0)] = 1e-4,
        beta1: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
        beta2: Annotated[float, Interval(ge=0, lt=1)] = 0.999,
        lr_decay: Annotated[float, Gt(0)] = 0.998,
        infer_rounds: Annotated[int, Gt(0)] = 1,
        partition_samples: Annotated[int, Gt(0)] = 10000,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden = tuple(hidden)
        self.ngf = ngf
        self.energy_hidden = tuple(energy_hidden)
        self.energy_activation = energy_activation
        self.obs_std = obs_std
        self.prior_steps = prior_steps
        self.prior_step_size = prior_step_size
        self.posterior_steps = posterior_steps
        self.posterior_step_size = posterior_step_size
        self.lr_e = lr_e
        self.lr_g = lr_g
        self.beta1 = beta1
        self.beta2 = beta2
        self.lr_decay = lr_decay
        self.infer_rounds = infer_rounds
        self.partition_samples = partition_samples

    # --------------------------------------------------------------------------- building
    def _build_generator(self, ctx: SetupContext) -> nn.Module:
        info = ctx.info
        if self.arch not in (*ARCHS, "ref32"):
            raise ValueError(f"model 'lebm': parameter 'arch' must be one of {(*ARCHS, 'ref32')}, got {self.arch!r}")
        if self.arch == "ref32":
            if info.kind != "image" or tuple(info.shape[1:]) != (32, 32):
                raise ValueError(
                    f"model 'lebm': arch='ref32' needs 32x32 images; data set {info.name!r} "
                    f"has shape {tuple(info.shape)}"
                )
            # channels_last weights take oneDNN's faster transposed-convolution kernels on CPU
            # (about 10% per generator pass here); the values are the same up to summation order.
            return Ref32Generator(self.latent_dim, info.shape[0], self.ngf).to(memory_format=torch.channels_last)
        arch = resolve_arch(info, self.arch, owner="model 'lebm'")
        return build_generator(info, self.latent_dim, arch, self.hidden, ngf=self.ngf)

    def setup(self, ctx: SetupContext) -> None:
        """Build g, f, both optimisers and the prior/posterior samplers of the suite's sampler axis."""
        self._setup_common(ctx)
        self.generator = self._build_generator(ctx)
        self.energy = EnergyMLP(self.latent_dim, self.energy_hidden, self.energy_activation)
        self.to(ctx.device)
        self.prior_sampler = ctx.sampler("prior", n_steps=self.prior_steps, step_size=self.prior_step_size)
        self.posterior_sampler = ctx.sampler(
            "posterior", n_steps=self.posterior_steps, step_size=self.posterior_step_size
        )
        betas = (self.beta1, self.beta2)
        self.optimizers = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=self.lr_g, betas=betas),
            "energy": torch.optim.Adam(self.energy.parameters(), lr=self.lr_e, betas=betas),
        }
        self._steps_per_epoch = max(1, len(ctx.train) // max(1, min(ctx.budget.batch_size, len(ctx.train))))
        # Per-chain-set generators need samplers that take them; a third-party sampler without the
        # keyword runs on the global RNG, sequentially.
        self._seeded_chains = accepts_generator(self.prior_sampler) and accepts_generator(self.posterior_sampler)
        self._concurrent_option = ctx.engine.concurrent_chains

    def _networks(self) -> tuple[nn.Module, ...]:
        return (self.generator, self.energy)

    # --------------------------------------------------------------------------- densities
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised log p_alpha(z) = f(z) + log N(z; 0, I): [B, Z] -> [B] (log Z left out)."""
        return self.energy(z) + std_normal_log_prob(z)

    def _energy_jet(self) -> Any:
        # EnergyMLP's stack gets the hand-written VJP; any other f (e.g. one swapped in by a test)
        # goes through autograd.
        return jet(self.energy.net if isinstance(self.energy, EnergyMLP) else self.energy)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Prior short-run dynamics from N(0, I) on f(z) + log N(z; 0, I): [n, Z]."""
        log_density = fused_log_density(self._fused_fn(None)) if self.fused else self.log_prior
        z0 = torch.randn(n, self.latent_dim, device=self.device, generator=generator)
        return run_chains(self.prior_sampler, log_density, z0, self.energy, generator=generator).z

    def log_partition(self, n: int | None = None) -> PartitionEstimate:
        """log Z = log E_{N(0,I)}[exp f(z)] ~ logsumexp_j f(z_j) - log J, z_j ~ N(0, I).

        Unbiased for Z, biased low for log Z (Jensen).  Returns ``(estimate, J, ESS)``.
        """
        n = self.partition_samples if n is None else n
        return log_partition_from_base(self.energy, self.sample_prior_base, n, chunk=4096)

    # --------------------------------------------------------------------------- training
    def _set_lr(self, step: int) -> None:
        """ExponentialLR per epoch, computed from the step so checkpoints need no scheduler state."""
        factor = self.lr_decay ** (step // self._steps_per_epoch)
        for name, lr in (("generator", self.lr_g), ("energy", self.lr_e)):
            for group in self.optimizers[name].param_groups:
                group["lr"] = lr * factor

    def _learn_generator(self, z_post: torch.Tensor, x_m: torch.Tensor) -> float:
        """One Adam step on sum ||g(z_post) - x||^2 / B (official loss, no 1/(2 sigma^2))."""
        loss_g = (self.generator(z_post) - x_m).pow(2).sum() / x_m.shape[0]
        opt_g = self.optimizers["generator"]
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_g.item()

    def _learn_energy(self, z_post: torch.Tensor, z_prior: torch.Tensor) -> dict[str, float]:
        """One Adam step on -(mean f(z_post) - mean f(z_prior)) (the MLE gradient of alpha)."""
        # One energy pass over both chain sets (same gradient as two passes).
        f_post, f_prior = self.energy(torch.cat([z_post, z_prior])).split([z_post.shape[0], z_prior.shape[0]])
        f_post, f_prior = f_post.mean(), f_prior.mean()
        loss_e = f_prior - f_post
        opt_e = self.optimizers["energy"]
        opt_e.zero_grad(set_to_none=True)
        loss_e.backward()
        opt_e.step()
        return {"loss_e": loss_e.item(), "f_post": f_post.item(), "f_prior": f_prior.item()}

    def _concurrent(self) -> bool:
        """Whether this step's two chain sets run in two threads (never changes the numbers).

        ``EngineOptions.concurrent_chains`` decides; ``None`` means: on a CPU with >= 2 intra-op
        threads and a dense (MLP) generator.  A conv generator's chains are arithmetic-bound and use
        both cores through intra-op threads already; pinning them to one thread would halve their
        speed.  Without per-chain generators (see :meth:`setup`) the chains never run concurrently.
        """
        if not self._seeded_chains:
            return False
        if self._concurrent_option is not None:
            return self._concurrent_option
        return self.device.type == "cpu" and torch.get_num_threads() >= 2 and is_dense_stack(self.generator)

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """Posterior and prior short-run chains, one Adam step for g, one for f.

        One code path: the posterior chains followed by the generator step form one task, the prior
        chains another.  The prior chains never read g, so running the tasks side by side
        (:meth:`_concurrent`) or one after the other is the same algorithm as the paper's order
        (chains, g step, f step), and since each task draws its noise from its own
        ``torch.Generator`` seeded from the global RNG, both give bitwise the same numbers.
        """
        self._set_lr(step)
        x_m = self.scale.to_model(batch.x.to(self.device))
        b = x_m.shape[0]
        gen_post: torch.Generator | None = None
        gen_prior: torch.Generator | None = None
        if self._seeded_chains:
            # Seeded from the global RNG: reproducible and resumable like the rest of the run.
            gen_post, gen_prior = (
                torch.Generator(device=self.device).manual_seed(s) for s in torch.randint(0, 2**62, (2,)).tolist()
            )

        def posterior_then_generator() -> tuple[torch.Tensor, float]:
            z0 = torch.randn(b, self.latent_dim, device=self.device, generator=gen_post)
            with frozen(self.generator):  # only this task touches g
                z = run_chains(self.posterior_sampler, self.posterior_log_density(x_m), z0, generator=gen_post).z
            return z, self._learn_generator(z, x_m)

        def prior() -> torch.Tensor:
            return self.sample_latent(b, gen_prior)

        concurrent = self._concurrent()
        # Side by side, the energy step after the chains runs on one intra-op thread too: a step on two
        # would leave libgomp's idle worker spinning for milliseconds into the next step's chains,
        # taking a core from them.  Same numbers: a GEMM computes each entry alike on one thread or
        # two (the sequential path, on the caller's threads, gives bitwise the same weights).
        with _intra_op_threads(1) if concurrent else nullcontext():
            with frozen(self.energy):  # both tasks read f; neither writes it
                if concurrent:
                    (z_post, loss_g), z_prior = run_concurrently(posterior_then_generator, prior)
                else:
                    (z_post, loss_g), z_prior = posterior_then_generator(), prior()
            return {"loss_g": loss_g, **self._learn_energy(z_post, z_prior)}


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block, the previous count restored on exit."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
