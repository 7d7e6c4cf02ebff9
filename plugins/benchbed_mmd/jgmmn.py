"""JGMMN: joint generative moment-matching network (IJCAI 2018, pp. 2121-2127), as reconstructed here.

Only the abstract is public (``docs/models.md#jgmmn``): a generation network G and an inference network E are
learned together by a joint MMD (JMMD) between two joint distributions, plus a "multi-modal
regularisation" that makes the inferred-code distribution consistent with the sample distribution.
The formulation implemented here (our reconstruction, not the paper's text):

* Structured prior: p(z) = 1/K sum_k N(z; mu_k, s^2 I) (:mod:`benchbed_mmd.priors`); K defaults to
  the data set's number of classes (10 when unlabelled).
* Generation joint P_G(x, z) = p(z) delta(x - G(z)): pairs (G(z_i), z_i), z_i ~ p(z).
  Inference joint Q_E(x, z) = p_data(x) delta(z - E(x)): pairs (x_j, E(x_j)).
* JMMD with the product kernel (Long et al., ICML 2017, "JAN": the joint MMD over layers)

      k((x, z), (x', z')) = k_x(x, x') * k_z(z, z'),   i.e.  K = K_x ∘ K_z (elementwise),

  each factor a sum of Gaussian kernels ``sum_q exp(-d^2 / (2 v_q))``, estimated by the biased
  V-statistic over the n + m pairs (:func:`benchbed.blocks.mmd.joint_mmd2`).
* Multi-modal regulariser: R = MMD^2({E(x_j)}, {z_i}) with the z-kernel, i.e. the inferred codes
  are matched to samples of the structured prior.
* Loss, minimised over G and E jointly with one optimiser (sqrt as in GMMN, Li et al. 2015 §3.3):

      L = sqrt(JMMD^2) + lambda * sqrt(R),   lambda = ``reg_weight`` (0 turns the regulariser off).

Bounded codes (our design decision): E ends in ``b * tanh(h / b)``, so codes stay in the box
[-b, b]^latent_dim around the prior (b = ``code_bound``, by default prior_radius + 4 prior_std).
Without it, the encoder can lower the data-data term of the V-statistic by sending the codes of data
that G does not yet cover far from everything, where every Gaussian kernel and its gradient
vanish, so they never come back (what that did on gmm8: ``docs/jgmmn.md#measurements``).

Architecture (``arch``; our design decision, the abstract names none): "mlp" (the default, so
existing configurations are unchanged) is the GMMN MLP ``latent -> hidden -> D`` with E mirroring it;
"conv" (images with sides a multiple of 4, >= 16) is a small DCGAN-style pair
(:func:`benchbed_mmd.nets.flat_conv_generator` / :func:`~benchbed_mmd.nets.flat_conv_encoder`: the
generator family's conv nets, two stride-2 (transposed) 4x4 convolutions of ``channels`` and
2 ``channels`` maps, here with ReLU and G's sigmoid output for [0, 1] images).  "auto" = conv where it
applies (:func:`benchbed.blocks.nets.resolve_arch`).  Only the networks change; the loss is the same.

The z-kernel's default has wide components only (``Z_MEDIAN_MULTIPLIERS``): a narrow z-kernel rewards
only pairs whose codes nearly coincide, so E may code a factor along a different direction in each
prior mode at no cost; wide components compare pairs across the whole code space.  What the codes
learn under each kernel, and what the regulariser changes, is measured in ``docs/jgmmn.md``
(probe tests: ``tests/mmd/test_jgmmn.py``).

Capabilities: ``sample`` = G(z) with z ~ p(z); ``infer`` = E(x); ``reconstruct`` = G(E(x)).
Kernel variances "auto": for x as in GMMN (:func:`benchbed_mmd.nets.resolve_variances`), for z
``Z_MEDIAN_MULTIPLIERS`` times half the median squared distance between prior samples.  The values
used are kept in buffers (saved with checkpoints).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval, MinLen
from torch import nn

from benchbed.blocks.mmd import MultiScaleGaussian, joint_mmd2, median_heuristic_variances, mmd2
from benchbed.blocks.nets import mlp, resolve_arch
from benchbed.contracts import Batch, Capability, SetupContext
from benchbed.model import LatentModel
from benchbed.params import AllowInf
from benchbed_mmd.mmd import sqrt_loss
from benchbed_mmd.nets import (
    OPTIMIZERS,
    OUTPUTS,
    check_choice,
    check_positive,
    flat_conv_encoder,
    flat_conv_generator,
    make_optimizer,
    output_layer,
    resolve_variances,
)
from benchbed_mmd.priors import mixture_means, sample_mixture

# Default z-kernel: variances 1, 4 and 16 times half the prior's median squared distance.  No narrow
# components: those let E code a factor along a different direction in each prior mode (module
# docstring; measurements in docs/jgmmn.md).
Z_MEDIAN_MULTIPLIERS: tuple[float, ...] = (1.0, 4.0, 16.0)


class SoftBound(nn.Module):
    """``b * tanh(h / b)``: the identity near 0, saturating smoothly at +-b."""

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.bound = bound

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.bound * torch.tanh(h / self.bound)


class JGMMN(LatentModel):
    """Generation network G and inference network E matched jointly by JMMD, plus a prior regulariser.

    Args:
        latent_dim: size of z.
        n_modes: mixture components K of the prior; 0 = the data set's classes (10 if unlabelled).
        prior_radius: distance of each mode mean from the origin.
        prior_std: std of each mode.
        hidden: hidden widths of the MLP G, latent side first (E mirrors them); unused by "conv".
        arch: "mlp", "conv" (two stride-2 (transposed) convolutions of ``channels`` and
            2 ``channels`` maps; images with side a multiple of 4, >= 16) or "auto" (conv where it applies).
        channels: conv width c.
        x_variances: data-kernel variances; ``None`` = auto.
        z_variances: latent-kernel variances; ``None`` = ``Z_MEDIAN_MULTIPLIERS`` times half the
            median squared distance between prior samples (wide kernels only: module docstring).
        reg_weight: lambda, the weight of the multi-modal regulariser (0 = off).
        code_bound: E's outputs lie in [-b, b]^latent_dim; ``None`` = prior_radius + 4 prior_std,
            ``inf`` = unbounded.
        output: G's output, "auto" (sigmoid for images, linear for vectors), "sigmoid" or "linear".
        n_samples: prior samples per step; 0 = the minibatch size.
        optimizer, lr, momentum: one optimiser over G and E ("adam": beta1 = momentum).
    """

    capabilities = frozenset({Capability.SAMPLE, Capability.INFER, Capability.RECONSTRUCT})

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 10,
        n_modes: Annotated[int, Ge(0)] = 0,
        prior_radius: Annotated[float, Gt(0)] = 1.0,
        prior_std: Annotated[float, Gt(0)] = 0.1,
        hidden: tuple[Annotated[int, Gt(0)], ...] = (64, 256, 256, 1024),
        arch: str = "mlp",
        channels: Annotated[int, Gt(0)] = 32,
        x_variances: Annotated[tuple[Annotated[float, Gt(0)], ...], MinLen(1)] | None = None,
        z_variances: Annotated[tuple[Annotated[float, Gt(0)], ...], MinLen(1)] | None = None,
        reg_weight: Annotated[float, Ge(0)] = 1.0,
        code_bound: Annotated[float | None, Gt(0), AllowInf] = None,
        output: str = "auto",
        n_samples: Annotated[int, Ge(0)] = 0,
        optimizer: str = "adam",
        lr: Annotated[float, Gt(0)] = 2e-3,
        momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.n_modes = n_modes
        self.prior_radius = prior_radius
        self.prior_std = prior_std
        self.hidden = tuple(hidden)
        self.arch = arch
        self.channels = channels
        self.x_variances = None if x_variances is None else tuple(x_variances)
        self.z_variances = None if z_variances is None else tuple(z_variances)
        self.reg_weight = reg_weight
        self.code_bound = code_bound
        self.output = output
        self.n_samples = n_samples
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum

    def setup(self, ctx: SetupContext) -> None:
        """Build G, E, the prior and the kernels for ``ctx.info``."""
        owner = "model 'jgmmn'"
        check_choice(owner, "output", self.output, OUTPUTS)
        check_choice(owner, "optimizer", self.optimizer, OPTIMIZERS)
        check_positive(owner, "lr", self.lr)
        check_positive(owner, "prior_std", self.prior_std)
        if self.reg_weight < 0:
            raise ValueError(f"{owner}: parameter 'reg_weight' must be >= 0, got {self.reg_weight!r}")
        self.info = ctx.info
        self.device = ctx.device
        k = self.n_modes or ctx.info.n_classes or 10
        self.register_buffer("prior_means", mixture_means(k, self.latent_dim, self.prior_radius))
        d = ctx.info.dim
        self.resolved_arch = resolve_arch(ctx.info, self.arch, owner=owner)
        bound = self.prior_radius + 4 * self.prior_std if self.code_bound is None else self.code_bound
        check_positive(owner, "code_bound", bound)
        out = None if math.isinf(bound) else SoftBound(bound)
        if self.resolved_arch == "conv":
            check_positive(owner, "channels", self.channels)
            self.generator = flat_conv_generator(
                ctx.info, self.latent_dim, self.channels, output_layer(ctx.info, self.output)
            )
            self.encoder = flat_conv_encoder(ctx.info, self.latent_dim, self.channels, out)
        else:
            self.generator = mlp([self.latent_dim, *self.hidden, d], nn.ReLU, output_layer(ctx.info, self.output))
            self.encoder = mlp([d, *reversed(self.hidden), self.latent_dim], nn.ReLU, out)
        vx = resolve_variances(self.x_variances, ctx.train.x, ctx.info, seed=ctx.seed)
        if self.z_variances is not None:
            vz = tuple(float(v) for v in self.z_variances)
        else:
            gen = torch.Generator().manual_seed(ctx.seed)
            prior = sample_mixture(self.prior_means, self.prior_std, 1000, gen)
            vz = median_heuristic_variances(prior, Z_MEDIAN_MULTIPLIERS)
        self.register_buffer("x_kernel_variances", torch.tensor(vx, dtype=torch.float64))
        self.register_buffer("z_kernel_variances", torch.tensor(vz, dtype=torch.float64))
        self.to(ctx.device)
        params = [*self.generator.parameters(), *self.encoder.parameters()]
        self.optimizers = {"ge": make_optimizer(self.optimizer, params, self.lr, self.momentum)}

    def resolved_settings(self) -> dict[str, object]:
        """Kernel variances derived from the data in ``setup`` (stored with the result's provenance)."""
        return {"arch": self.resolved_arch,
                "x_kernel_variances": [float(v) for v in self.x_kernel_variances],
                "z_kernel_variances": [float(v) for v in self.z_kernel_variances]}

    # ----------------------------------------------------------------------------- pieces
    @property
    def kernels(self) -> tuple[MultiScaleGaussian, MultiScaleGaussian]:
        """(k_x, k_z), read from the buffers so a restored model uses its own scales."""
        return (
            MultiScaleGaussian(tuple(float(v) for v in self.x_kernel_variances)),
            MultiScaleGaussian(tuple(float(v) for v in self.z_kernel_variances)),
        )

    def sample_prior(self, n: int) -> torch.Tensor:
        """z ~ p(z), the structured mixture prior: [n, latent_dim]."""
        return sample_mixture(self.prior_means, self.prior_std, n)

    def losses(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """JMMD^2 of (G(z), z) vs (x, E(x)), the regulariser R, and the total loss (x: [B, D] flat)."""
        kx, kz = self.kernels
        gz = self.generator(z)
        ex = self.encoder(x)
        jmmd2 = joint_mmd2([gz, z], [x, ex], [kx, kz])
        reg = mmd2(ex, z, kz)
        total = sqrt_loss(jmmd2)
        if self.reg_weight > 0:
            total = total + self.reg_weight * sqrt_loss(reg)
        return {"loss": total, "jmmd2": jmmd2, "reg_mmd2": reg}

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """One joint update of G and E."""
        x = batch.x.reshape(batch.x.shape[0], -1)
        z = self.sample_prior(self.n_samples or x.shape[0])
        out = self.losses(x, z)
        opt = self.optimizers["ge"]
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        return {k: float(v.detach()) for k, v in out.items()}

    # ----------------------------------------------------------------------------- capabilities
    def sample(self, n: int) -> torch.Tensor:
        """G(z), z ~ p(z): [n, *D] in the data scale."""
        return self.generator(self.sample_prior(n)).reshape(n, *self.info.shape)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """E(x): [B, latent_dim]."""
        return self.encoder(x.reshape(x.shape[0], -1))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x)): [B, *D]."""
        return self.generator(self.infer(x)).reshape(x.shape[0], *self.info.shape)
