"""GMMN+AE (Li, Swersky & Zemel, ICML 2015, §3.2): a GMMN in the code space of a frozen auto-encoder.

Two phases inside one training budget (``docs/models.md#gmmn_ae``, official ``train.py: mnist_mmd_code_space``):

1. steps ``[0, ae_steps)``: an auto-encoder ``x -> h = enc(x) -> dec(h)`` (official: sigmoid units;
   here ReLU hidden units by default, see below, and a sigmoid code layer), dropout on each
   encoder layer's *input* (official MNIST: 0.2 on pixels, 0.5 on the hidden layer)
   and a binary cross-entropy loss for [0, 1] images (squared error for vector data, whose decoder
   output is linear).  ``ae_steps = round(ae_fraction * budget.steps)``.
2. the remaining steps: the AE is frozen (eval mode, dropout off) and a GMMN ``h = G(z)``,
   z ~ U[-1, 1]^10, with sigmoid output (codes lie in [0, 1]) is trained on
   ``sqrt(MMD_b^2({G(z_i)}, {enc(x_j)}))`` (the official MMD in code space; official kernel: one
   variance 1).

Samples are ``dec(G(z))``; ``infer`` is the encoder and ``reconstruct`` is ``dec(enc(x))``.

Deviations from the official run, stated: no greedy layer-wise pre-training of the AE (plain
end-to-end training with Adam, because a quick-suite budget has a few hundred AE steps instead of
3000 + 3000; the official fine-tuning is SGD lr 0.1, momentum 0 -> 0.5 -> 0.9, ``max_grad_norm`` 10,
and the clipping at 10 is kept).  Without the pre-training, the official sigmoid hidden units
collapse to a constant code on 8x8 digits, so the hidden units default to ReLU
(``ae_activation="relu"``; ``"sigmoid"`` is the official choice); the code layer stays a sigmoid.
The code-space GMMN uses Adam (lr 2e-3, beta1 0.5) like :mod:`benchbed_mmd.gmmn` (official: SGD
lr 2, momentum 0.9).  The runs behind both choices: ``docs/models-notes.md#gmmn_ae``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval, MinLen
from torch import nn
from torch.nn import functional as F

from benchbed.blocks.mmd import MultiScaleGaussian, mmd2
from benchbed.blocks.nets import mlp
from benchbed.contracts import Batch, Capability, SetupContext
from benchbed.model import LatentModel
from benchbed_mmd.mmd import sqrt_loss
from benchbed_mmd.nets import (
    OPTIMIZERS,
    check_choice,
    check_positive,
    make_optimizer,
    set_schedule,
    uniform_noise,
)

_MAX_GRAD_NORM = 10.0  # official AE training: max_grad_norm=10


class GMMNAE(LatentModel):
    """GMMN trained in the code space of an auto-encoder trained first, then frozen.

    Args:
        code_dim: size of the AE code h (official MNIST: 32).
        ae_hidden: encoder hidden widths, bottom-up (the decoder mirrors them); official (1024,).
        ae_dropout: dropout rate on the input of each encoder layer (pixels first); official (0.2, 0.5).
        ae_activation: hidden units of the AE, "relu" (default) or "sigmoid" (official); the code
            layer is a sigmoid either way.
        ae_fraction: fraction of the budget spent on the AE before the GMMN phase.
        ae_optimizer, ae_lr, ae_momentum: AE optimiser ("adam": beta1 = momentum).
        noise_dim: size of the uniform noise z.
        hidden: GMMN hidden widths, noise side first.
        variances: code-space kernel variances (official MNIST: one variance, 1).
        n_samples: generated codes per step; 0 = the minibatch size.
        optimizer, lr, momentum: GMMN optimiser.
        decay_at: fraction of the GMMN phase after which lr / 10 (and SGD momentum 1 - (1 - m) / 10).
    """

    capabilities = frozenset({Capability.SAMPLE, Capability.INFER, Capability.RECONSTRUCT})

    def __init__(
        self,
        *,
        code_dim: Annotated[int, Gt(0)] = 32,
        ae_hidden: tuple[Annotated[int, Gt(0)], ...] = (1024,),
        ae_dropout: tuple[Annotated[float, Interval(ge=0, lt=1)], ...] = (0.2, 0.5),
        ae_activation: str = "relu",
        ae_fraction: Annotated[float, Interval(gt=0, lt=1)] = 0.4,
        ae_optimizer: str = "adam",
        ae_lr: Annotated[float, Gt(0)] = 1e-3,
        ae_momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.9,
        noise_dim: Annotated[int, Gt(0)] = 10,
        hidden: tuple[Annotated[int, Gt(0)], ...] = (64, 256, 256, 1024),
        variances: Annotated[tuple[Annotated[float, Gt(0)], ...], MinLen(1)] = (1.0,),
        n_samples: Annotated[int, Ge(0)] = 0,
        optimizer: str = "adam",
        lr: Annotated[float, Gt(0)] = 2e-3,
        momentum: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
        decay_at: Annotated[float, Ge(0)] = 0.25,
    ) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.ae_hidden = tuple(ae_hidden)
        self.ae_dropout = tuple(ae_dropout)
        self.ae_activation = ae_activation
        self.ae_fraction = ae_fraction
        self.ae_optimizer = ae_optimizer
        self.ae_lr = ae_lr
        self.ae_momentum = ae_momentum
        self.noise_dim = noise_dim
        self.hidden = tuple(hidden)
        self.variances = tuple(variances)
        self.n_samples = n_samples
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.decay_at = decay_at

    # ----------------------------------------------------------------------------- building
    def setup(self, ctx: SetupContext) -> None:
        """Build the AE and the GMMN with their optimisers; fix the phase boundary from the budget."""
        owner = "model 'gmmn_ae'"
        check_choice(owner, "ae_optimizer", self.ae_optimizer, OPTIMIZERS)
        check_choice(owner, "ae_activation", self.ae_activation, ("sigmoid", "relu"))
        check_choice(owner, "optimizer", self.optimizer, OPTIMIZERS)
        check_positive(owner, "lr", self.lr)
        check_positive(owner, "ae_lr", self.ae_lr)
        if not 0.0 < self.ae_fraction < 1.0:
            raise ValueError(f"{owner}: parameter 'ae_fraction' must be in (0, 1), got {self.ae_fraction!r}")
        if len(self.ae_dropout) > len(self.ae_hidden) + 1:
            raise ValueError(f"{owner}: 'ae_dropout' has {len(self.ae_dropout)} rates for "
                             f"{len(self.ae_hidden) + 1} encoder layers")
        self.kernel = MultiScaleGaussian(self.variances)
        self.info = ctx.info
        self.device = ctx.device
        self.image = ctx.info.kind == "image"
        d = ctx.info.dim
        act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[self.ae_activation]
        # The code layer is always a sigmoid: codes in [0, 1]^code_dim, matched by G's sigmoid output.
        self.encoder = mlp([d, *self.ae_hidden, self.code_dim], act, nn.Sigmoid(), dropout=self.ae_dropout)
        # The decoder ends in logits for images (BCE-with-logits is the stable form of the official
        # sigmoid + cross-entropy) and is linear for vector data.
        self.decoder = mlp([self.code_dim, *reversed(self.ae_hidden), d], act)
        self.generator = mlp([self.noise_dim, *self.hidden, self.code_dim], nn.ReLU, nn.Sigmoid())
        self.to(ctx.device)
        ae_params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizers = {
            "ae": make_optimizer(self.ae_optimizer, ae_params, self.ae_lr, self.ae_momentum),
            "gmmn": make_optimizer(self.optimizer, self.generator.parameters(), self.lr, self.momentum),
        }
        self.ae_steps = max(1, round(self.ae_fraction * ctx.budget.steps))
        gmmn_steps = max(1, ctx.budget.steps - self.ae_steps)
        self.decay_step = self.ae_steps + int(self.decay_at * gmmn_steps)

    def resolved_settings(self) -> dict[str, object]:
        """Settings derived from the budget in ``setup`` (stored with the result's provenance)."""
        return {"ae_steps": self.ae_steps, "decay_step": self.decay_step}

    # ----------------------------------------------------------------------------- training
    def _ae_step(self, x: torch.Tensor) -> dict[str, float]:
        out = self.decoder(self.encoder(x))
        if self.image:
            loss = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1).mean()
        else:
            loss = (out - x).pow(2).sum(1).mean()
        opt = self.optimizers["ae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], _MAX_GRAD_NORM)
        opt.step()
        return {"ae_loss": float(loss.detach())}

    def _gmmn_step(self, x: torch.Tensor, step: int) -> dict[str, float]:
        set_schedule(self.optimizers["gmmn"], self.optimizer, self.lr, self.momentum, step >= self.decay_step)
        self.encoder.eval()  # frozen AE: no dropout on the targets
        with torch.no_grad():
            target = self.encoder(x)
        z = uniform_noise(self.n_samples or x.shape[0], self.noise_dim, self.device)
        m2 = mmd2(self.generator(z), target, self.kernel)
        loss = sqrt_loss(m2)
        opt = self.optimizers["gmmn"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "mmd2": float(m2.detach())}

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """AE step during the first ``ae_steps`` steps, GMMN step in code space afterwards."""
        x = batch.x.reshape(batch.x.shape[0], -1)
        if step < self.ae_steps:
            return self._ae_step(x)
        return self._gmmn_step(x, step)

    # ----------------------------------------------------------------------------- capabilities
    def _decode(self, h: torch.Tensor) -> torch.Tensor:
        out = self.decoder(h)
        if self.image:
            out = torch.sigmoid(out)
        return out.reshape(h.shape[0], *self.info.shape)

    def sample(self, n: int) -> torch.Tensor:
        """dec(G(z)), z ~ U[-1, 1]^noise_dim: [n, *D] in the data scale."""
        return self._decode(self.generator(uniform_noise(n, self.noise_dim, self.device)))

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """AE codes enc(x) [B, code_dim] (dropout off)."""
        was_training = self.encoder.training
        self.encoder.eval()
        h = self.encoder(x.reshape(x.shape[0], -1))
        self.encoder.train(was_training)
        return h

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """dec(enc(x)) [B, *D]."""
        return self._decode(self.infer(x))
