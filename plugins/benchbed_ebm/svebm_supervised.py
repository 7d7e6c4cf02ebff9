"""svebm's classifier trained on its labels alone, "svebm_supervised": a supervised-only baseline for
the semi-supervised claim of the symbol-vector coupling paper (Pang et al. 2020, arXiv 2010.09359;
``docs/models.md#svebm_supervised``).

The claim is that the unlabelled data, through the generator and the EBM prior, improve the
classifier.  The baseline that isolates that gain is svebm's own classifier network with the
unlabelled part of its training removed:

    logits(x) = f(mu(x))          mu: svebm's inference net (mean half), f: R^d -> R^K, svebm's head
    loss      = w_l * CE(softmax(f(mu(x_l))), y_l)      x_l drawn with replacement from the labelled set

that is, svebm's labelled step (step 1 of its loop) and nothing else: no generator, no EBM prior,
no unlabelled data, no mutual-information term.  Same labelled examples
(:func:`benchbed_ebm.labels.select_labelled`, ``label_seed``), same widths, encoder dropout
(official 0.5), Adam rates and weight decays as svebm's defaults, so a suite that sets the two entries'
shared parameters alike isolates what the unlabelled data and the EBM prior add.

The encoder keeps svebm's output size ``2 * latent_dim`` (mean and log-variance halves) and uses the
mean half, so the parameter count of the classifier path is svebm's exactly.
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval

from benchbed.blocks.nets import mlp
from benchbed.blocks.scaling import DataScale
from benchbed.contracts import Batch, SetupContext
from benchbed.model import LatentModel
from benchbed_ebm.labels import LabelledSubset
from benchbed_ebm.nets import Arch, Encoder, uses_conv


class SVEBMSupervised(LabelledSubset, LatentModel):
    """svebm's encoder mean and class head trained by cross-entropy on the labelled examples only.

    Latent codes (``infer``) are ``[B, latent_dim]``; ``classify`` gives ``[B, K]`` logits.

    Args:
        arch: ``"auto"`` (conv nets for 28/32-px images, MLPs otherwise), ``"mlp"`` or ``"conv"``.
        enc_dropout: dropout after each hidden layer of the encoder (svebm's official 0.5).
        labeled_weight: weight of the cross-entropy (svebm's 200; with Adam it mostly scales the
            weight decay's relative strength).
    """

    capabilities = frozenset({"classify", "infer"})

    def __init__(
        self,
        *,
        latent_dim: Annotated[int, Gt(0)] = 32,
        n_labels_per_class: Annotated[int, Gt(0)] = 10,
        label_seed: int | None = 0,
        hidden: Annotated[int, Gt(0)] = 200,
        channels: Annotated[int, Gt(0)] = 64,
        arch: Arch = "auto",
        ebm_width: Annotated[int, Gt(0)] = 200,
        enc_dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.5,
        labeled_weight: Annotated[float, Gt(0)] = 200.0,
        e_lr: Annotated[float, Gt(0)] = 1e-4,
        i_lr: Annotated[float, Gt(0)] = 1e-4,
        e_decay: Annotated[float, Ge(0)] = 1e-3,
        i_decay: Annotated[float, Ge(0)] = 2e-3,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.n_labels_per_class = n_labels_per_class
        self.label_seed = label_seed
        self.hidden, self.channels, self.ebm_width, self.arch = hidden, channels, ebm_width, arch
        self.enc_dropout = enc_dropout
        self.labeled_weight = labeled_weight
        self.e_lr, self.i_lr, self.e_decay, self.i_decay = e_lr, i_lr, e_decay, i_decay

    def setup(self, ctx: SetupContext) -> None:
        info = ctx.info
        self._require_labels(ctx, "svebm_supervised")
        conv = uses_conv(info.shape, self.arch)
        self.scale = DataScale(info, train=ctx.train)
        self.enc = Encoder(info.shape, 2 * self.latent_dim, width=self.channels if conv else self.hidden,
                           conv=conv, dropout=self.enc_dropout)
        self.head = mlp([self.latent_dim, self.ebm_width, self.ebm_width, info.n_classes])  # svebm's f
        self._choose_labelled(ctx)
        self.to(ctx.device)
        self.device = ctx.device
        self._take_labelled()
        # svebm's optimisers of f ("e") and q ("i"), with their betas and weight decays.
        self.optimizers = {
            "e": torch.optim.Adam(self.head.parameters(), lr=self.e_lr, weight_decay=self.e_decay),
            "i": torch.optim.Adam(self.enc.parameters(), lr=self.i_lr, weight_decay=self.i_decay),
        }

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One labelled minibatch of ``batch``'s size; ``batch`` itself (unlabelled data) is not used."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        ce = self.labelled_cross_entropy(self.classify, batch.x.shape[0])
        (self.labeled_weight * ce).backward()
        for opt in self.optimizers.values():
            opt.step()
        return {"ce_labelled": ce.item()}

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's mean ``mu(x)``: ``[B, latent_dim]``."""
        return self.enc(self.scale.to_model(x))[:, : self.latent_dim]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``f(mu(x))``: ``[B, K]``."""
        return self.head(self.infer(x))
