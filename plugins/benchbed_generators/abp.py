"""Alternating back-propagation, ABP (Han, Lu, Zhu, Wu, AAAI 2017; ``docs/models.md#abp``).

Model: z ~ N(0, I), x_m = g(z) + eps, eps ~ N(0, sigma^2 I).  Each training step alternates

1. inferential back-propagation: the suite's posterior sampler (Langevin by default) on
   log p(z|x) = -||x - g(z)||^2 / (2 sigma^2) - ||z||^2 / 2 + const, started from each example's
   persistent chain (one z per training example, kept across epochs and in checkpoints);
2. learning back-propagation: one Adam step on (1/B) sum_i ||x_i - g(z_i)||^2 / (2 sigma^2),
   the gradient of log p(x | z) in beta (the paper's learning step, ``docs/models.md#abp``).

At test time ``infer`` is not persistent: chains start from N(0, I) (``infer_rounds`` sampler runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt

from benchbed.blocks.chains import run_chains
from benchbed.blocks.latent import DynamicsGenerator
from benchbed.blocks.nets import build_generator, resolve_arch
from benchbed.contracts import Batch, SetupContext


class ABP(DynamicsGenerator):
    """Generator trained by alternating back-propagation with persistent posterior chains.

    Args:
        latent_dim: size of z.
        arch: "auto", "mlp" or "conv" (see :func:`benchbed.blocks.nets.resolve_arch`).
        hidden: MLP hidden widths of the generator.
        lr: Adam learning rate of the generator.
        obs_std: observation std sigma in the working scale (images in [-1, 1]).
        n_steps: posterior sampler steps per training visit (the model's default for role "posterior").
        step_size: posterior sampler step size (default for role "posterior").
        persistent: warm-start each example's chain from its last z (ABP paper); False = from N(0, I).
            A sampler that has its own ``persistent`` setting (``langevin``) receives this value as
            its default, and the suite's sampler setting, when given, decides.
        infer_rounds: consecutive posterior sampler runs at test time (chains start at N(0, I)).

    The engine option ``fused`` (``SetupContext.engine``) decides whether the sampler gets a
    log-density with a hand-written MLP gradient (:mod:`benchbed.blocks.fused`): the same values and
    gradients up to floating-point rounding, fewer operations per step.
    """

    model_name = "abp"

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 16,
        arch: str = "auto",
        hidden: tuple[Annotated[int, Gt(0)], ...] = (256, 256),
        lr: Annotated[float, Gt(0)] = 1e-3,
        obs_std: Annotated[float, Gt(0)] = 0.3,
        n_steps: Annotated[int, Ge(0)] = 20,
        step_size: Annotated[float, Gt(0)] = 0.1,
        persistent: bool = True,
        infer_rounds: Annotated[int, Gt(0)] = 3,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.arch = arch
        self.hidden = tuple(hidden)
        self.lr = lr
        self.obs_std = obs_std
        self.n_steps = n_steps
        self.step_size = step_size
        self.persistent = persistent
        self.infer_rounds = infer_rounds

    def setup(self, ctx: SetupContext) -> None:
        """Build the generator, its optimiser, the posterior sampler and the chain bank."""
        self._setup_common(ctx)
        arch = resolve_arch(ctx.info, self.arch, owner="model 'abp'")
        self.generator = build_generator(ctx.info, self.latent_dim, arch, self.hidden).to(ctx.device)
        self.posterior_sampler = ctx.sampler(
            "posterior", n_steps=self.n_steps, step_size=self.step_size, persistent=self.persistent
        )
        self.optimizers = {"generator": torch.optim.Adam(self.generator.parameters(), lr=self.lr)}
        self._persistent = bool(getattr(self.posterior_sampler, "persistent", self.persistent))
        # One persistent chain per training example, indexed by Batch.index (Han et al. 2017; docs/models.md#abp).
        self.chains = torch.randn(len(ctx.train), self.latent_dim, device=ctx.device)

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """Inferential BP (posterior sampler) then learning BP (one Adam step)."""
        x_m = self.scale.to_model(batch.x.to(self.device))
        idx = batch.index.to(self.device)
        z0 = self.chains[idx] if self._persistent else self.sample_prior_base(x_m.shape[0])
        result = run_chains(self.posterior_sampler, self.posterior_log_density(x_m), z0, self.generator)
        z = result.z
        if self._persistent:
            self.chains[idx] = z

        loss = self._inv_two_var * self.sq_err(x_m, z).mean()
        opt = self.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out = {"loss": loss.item(), "mse": loss.item() / (self._inv_two_var * self.scale.dim)}
        if "acceptance_rate" in result.diagnostics:
            out["acceptance_rate"] = float(result.diagnostics["acceptance_rate"])
        return out

    def extra_state(self) -> dict[str, Any]:
        """The persistent chains [N_train, Z]."""
        return {"chains": self.chains.detach().clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the chains saved by :meth:`extra_state`."""
        if "chains" in state:
            chains = state["chains"].to(self.device)
            if chains.shape != self.chains.shape:
                raise ValueError(
                    f"model 'abp': checkpoint holds {tuple(chains.shape)} chains, the training split needs "
                    f"{tuple(self.chains.shape)}"
                )
            self.chains = chains.clone()
