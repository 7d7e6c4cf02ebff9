"""Generative moment-matching network, GMMN (Li, Swersky & Zemel, ICML 2015), data-space version.

Model: x = G(z), z ~ U[-1, 1]^10, G an MLP (ReLU hidden layers; sigmoid output for [0, 1] images,
linear output for vector data, whose coordinates are unbounded).  Training minimises

    L = sqrt(MMD_b^2({G(z_i)}, {x_j}))                                  (Li et al. 2015, eq. 4 + §3.3)

with the biased V-statistic of a sum of Gaussian kernels ``sum_q exp(-d^2 / (2 v_q))`` (v_q are
variances; :mod:`benchbed.blocks.mmd`), a fresh noise batch every step, and as many generated
samples as data points unless ``n_samples`` says otherwise (official: 1000 + 1000).

Defaults follow the official MNIST input-space run (``train.py: mnist_mmd_input_space``) where they
carry over: hidden widths 64-256-256-1024, U[-1, 1]^10 noise, sqrt of the biased MMD^2, lr / 10
after a quarter of the budget (iteration 10,000 of 40,000; with SGD the momentum also goes
0.9 -> 0.99).  Deviation: the optimiser is Adam (lr 2e-3, beta1 0.5) instead of the official SGD
lr 2 / momentum 0.9, which saturates the sigmoid output on 8x8 digits (the D/784-scaled variances are
~12x smaller, which makes the gradients ~12x larger) and stalls on gmm8 (the comparison:
``docs/models-notes.md#gmmn``).  The official optimiser is one suite line away:
``optimizer = "sgd", lr = 2.0, momentum = 0.9``.

Kernel variances "auto": the official (2, 5, ..., 80) scaled by D / 784 for images, the median
heuristic for vectors (:func:`benchbed_mmd.nets.resolve_variances`); the values used are kept in
the buffer ``kernel_variances`` (saved with every checkpoint).

The model only samples: there is no encoder, so ``infer``/``reconstruct`` (hence reconstruction
MSE) do not apply.  No dynamics, so the sampler axis does not apply (``uses_sampler=False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval, MinLen
from torch import nn

from benchbed.blocks.mmd import MultiScaleGaussian, mmd2
from benchbed.blocks.nets import mlp
from benchbed.contracts import Batch, Capability, SetupContext
from benchbed.model import LatentModel
from benchbed_mmd.mmd import sqrt_loss
from benchbed_mmd.nets import (
    OPTIMIZERS,
    OUTPUTS,
    check_choice,
    check_positive,
    make_optimizer,
    output_layer,
    resolve_variances,
    set_schedule,
    uniform_noise,
)


class GMMN(LatentModel):
    """Data-space GMMN.

    Args:
        noise_dim: size of the uniform noise z.
        hidden: hidden widths of G, bottom (noise side) first.
        variances: kernel variances v_q (squared bandwidths); ``None`` = auto (see module doc).
        output: "auto" (sigmoid for images, linear for vectors), "sigmoid" or "linear".
        n_samples: generated samples per step; 0 = the minibatch size.
        unbiased: train on the U-statistic instead of the official biased V-statistic.
        optimizer: "sgd" (official) or "adam" (beta1 = ``momentum``).
        lr: learning rate.
        momentum: SGD momentum (Adam beta1).
        decay_at: fraction of the budget after which lr / 10 (and SGD momentum 1 - (1 - m) / 10).
    """

    capabilities = frozenset({Capability.SAMPLE})

    def __init__(
        self,
        *,
        noise_dim: Annotated[int, Gt(0)] = 10,
        hidden: tuple[Annotated[int, Gt(0)], ...] = (64, 256, 256, 1024),
        variances: Annotated[tuple[Annotated[float, Gt(0)], ...], MinLen(1)] | None = None,
        output: str = "auto",
        n_samples: Annotated[int, Ge(0)] = 0,
        unbiased: bool = False,
        optimizer: str = "adam",
        lr: Annotated[float, Gt(0)] = 2e-3,
        momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
        decay_at: Annotated[float, Ge(0)] = 0.25,
    ) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.hidden = tuple(hidden)
        self.variances = None if variances is None else tuple(variances)
        self.output = output
        self.n_samples = n_samples
        self.unbiased = unbiased
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.decay_at = decay_at

    def setup(self, ctx: SetupContext) -> None:
        """Build G and its optimiser; fix the kernel variances from the data when "auto"."""
        owner = "model 'gmmn'"
        check_choice(owner, "output", self.output, OUTPUTS)
        check_choice(owner, "optimizer", self.optimizer, OPTIMIZERS)
        check_positive(owner, "lr", self.lr)
        self.info = ctx.info
        self.device = ctx.device
        self.generator = mlp([self.noise_dim, *self.hidden, ctx.info.dim], nn.ReLU, output_layer(ctx.info, self.output))
        v = resolve_variances(self.variances, ctx.train.x, ctx.info, seed=ctx.seed)
        self.register_buffer("kernel_variances", torch.tensor(v, dtype=torch.float64))
        self.to(ctx.device)
        self.optimizers = {"g": make_optimizer(self.optimizer, self.generator.parameters(), self.lr, self.momentum)}
        self.decay_step = int(self.decay_at * ctx.budget.steps)

    def resolved_settings(self) -> dict[str, object]:
        """Settings derived from the data in ``setup`` (stored with the result's provenance)."""
        return {"kernel_variances": [float(v) for v in self.kernel_variances], "decay_step": self.decay_step}

    @property
    def kernel(self) -> MultiScaleGaussian:
        """The training kernel (variances read from the buffer, so a restored model uses its own)."""
        return MultiScaleGaussian(tuple(float(v) for v in self.kernel_variances))

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """One update of G on sqrt(MMD^2) between a fresh batch of samples and ``batch.x``."""
        set_schedule(self.optimizers["g"], self.optimizer, self.lr, self.momentum, step >= self.decay_step)
        x = batch.x.reshape(batch.x.shape[0], -1)
        z = uniform_noise(self.n_samples or x.shape[0], self.noise_dim, self.device)
        m2 = mmd2(self.generator(z), x, self.kernel, unbiased=self.unbiased)
        loss = sqrt_loss(m2)
        opt = self.optimizers["g"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "mmd2": float(m2.detach())}

    def sample(self, n: int) -> torch.Tensor:
        """n samples [n, *D] in the data scale."""
        z = uniform_noise(n, self.noise_dim, self.device)
        return self.generator(z).reshape(n, *self.info.shape)
