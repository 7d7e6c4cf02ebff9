"""Short-run inference dynamics, SRI (Nijkamp, Pang, Han, Zhou, Zhu, Wu, arXiv 1912.01909; ``docs/models.md#sri``).

Model: z ~ N(0, I) (one layer, or several whitened layers concatenated, see :mod:`.hierarchical`),
x_m = g(z) + eps, eps ~ N(0, sigma^2 I).  Each training step:

1. z_K = short-run Langevin on log p(z | x) from z_0 ~ N(0, I) (non-persistent), the suite's
   ``short_run`` sampler: its end point has the distribution q_s(z | x);
2. the generator takes one Adam step on sum ||x - g(z_K)||^2 / B (the official loss; it maximises
   E_{q_s}[log p(x | z)] up to the 1/(2 sigma^2) factor, which Adam absorbs);
3. every ``learn_every`` steps the step size s takes one step on KL(q_s || p(z | x)) (SRI's rule,
   ``short_run.learn`` on ``learn_batch`` examples: its cost grows with the latent size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval, MinLen

from benchbed.blocks.chains import frozen, run_chains
from benchbed.blocks.latent import DynamicsGenerator
from benchbed.blocks.nets import build_generator, resolve_arch
from benchbed.contracts import Batch, SetupContext
from benchbed_generators.hierarchical import HierarchicalGenerator


class SRI(DynamicsGenerator):
    """Generator trained with short-run inference from the prior and a learned step size.

    Args:
        latent_dims: latent sizes per layer, top first; one entry = a single-layer generator.
        arch: "auto", "mlp" or "conv" for the generator's output head.
        hidden: MLP hidden widths (the last one is the width of the hierarchy's features).
        lr: Adam learning rate of the generator (official 8e-5 with a 600-epoch budget).
        beta1: Adam beta1 (official 0.5).
        obs_std: sigma of p(x|z) in the working scale (official 0.15 on [-1, 1]).
        n_steps, step_size: defaults of the "posterior" sampler role (official 25, 0.05).
        learn_step_size: learn s by minimising KL(q_s || p(z|x)) (needs a sampler with ``learn``).
        learn_every: training steps between step-size updates.
        learn_batch: examples used per step-size update.
        infer_rounds: posterior sampler runs at test time.
    """

    model_name = "sri"
    # The step-size learning differentiates through the chain (a second derivative of log p):
    # fused gradients are not differentiable again, so the plain autograd closures are used.
    supports_fused = False

    def __init__(
        self,
        *,
        latent_dims: Annotated[tuple[Annotated[int, Gt(0)], ...], MinLen(1)] = (16,),
        arch: str = "auto",
        hidden: tuple[Annotated[int, Gt(0)], ...] = (256, 256),
        lr: Annotated[float, Gt(0)] = 1e-3,
        beta1: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
        obs_std: Annotated[float, Gt(0)] = 0.15,
        n_steps: Annotated[int, Ge(0)] = 25,
        step_size: Annotated[float, Gt(0)] = 0.05,
        learn_step_size: bool = True,
        learn_every: Annotated[int, Gt(0)] = 5,
        learn_batch: Annotated[int, Gt(0)] = 8,
        infer_rounds: Annotated[int, Gt(0)] = 1,
    ) -> None:
        super().__init__()
        self.latent_dims = tuple(latent_dims)
        self.latent_dim = sum(self.latent_dims)
        self.arch = arch
        self.hidden = tuple(hidden)
        self.lr = lr
        self.beta1 = beta1
        self.obs_std = obs_std
        self.n_steps = n_steps
        self.step_size = step_size
        self.learn_step_size = learn_step_size
        self.learn_every = learn_every
        self.learn_batch = learn_batch
        self.infer_rounds = infer_rounds

    @property
    def n_layers(self) -> int:
        """Number of latent layers L."""
        return len(self.latent_dims)

    def setup(self, ctx: SetupContext) -> None:
        """Build the (hierarchical) generator, its optimiser and the short-run sampler."""
        if not self.latent_dims or min(self.latent_dims) < 1:
            raise ValueError(f"model 'sri': latent_dims must be positive sizes, got {self.latent_dims}")
        if self.learn_every < 1 or self.learn_batch < 1:
            raise ValueError("model 'sri': learn_every and learn_batch must be >= 1")
        self._setup_common(ctx)
        arch = resolve_arch(ctx.info, self.arch, owner="model 'sri'")
        if self.n_layers == 1:
            self.generator = build_generator(ctx.info, self.latent_dim, arch, self.hidden)
        else:
            self.generator = HierarchicalGenerator(ctx.info, self.latent_dims, arch, self.hidden)
        self.generator.to(ctx.device)
        # The sampler may be an nn.Module with a learned step size: as a sub-module it is in the
        # state_dict and the parameter count; its own optimiser goes into the checkpoint.
        self.posterior_sampler = ctx.sampler("posterior", n_steps=self.n_steps, step_size=self.step_size)
        self.optimizers = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(self.beta1, 0.999))
        }
        self._learns = self.learn_step_size and callable(getattr(self.posterior_sampler, "learn", None))
        if self._learns:
            self.optimizers["step_size"] = self.posterior_sampler.optimizer

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """Short-run inference from the prior, a generator step, then (maybe) a step-size step."""
        x_m = self.scale.to_model(batch.x.to(self.device))
        b = x_m.shape[0]
        result = run_chains(
            self.posterior_sampler, self.posterior_log_density(x_m), self.sample_prior_base(b), self.generator
        )
        loss = self.sq_err(x_m, result.z).mean()
        opt = self.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        out = {"loss": loss.item(), "step_size": float(result.diagnostics["step_size"])}
        if self._learns and step % self.learn_every == 0:
            xs = x_m[: self.learn_batch]
            with frozen(self.generator):
                free_energy = self.posterior_sampler.learn(
                    self.posterior_log_density(xs), self.sample_prior_base(xs.shape[0])
                )
            # A non-finite estimate means the sampler halved s (its documented fallback): not a divergence.
            if torch.isfinite(torch.tensor(free_energy)):
                out["free_energy"] = free_energy
        return out
