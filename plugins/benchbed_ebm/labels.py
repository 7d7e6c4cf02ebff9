"""The one rule for choosing the labelled examples of a semi-supervised cell, and the models' handling of them.

``svebm`` and ``svebm_supervised`` (which train on these labels, through :class:`LabelledSubset`) and
the ``accuracy`` metric's logistic-regression reference row (which fits on them) call
:func:`select_labelled`, so all three see the same images for the same (training split, labels per
class, seed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchbed.contracts import DataBundle, SetupContext


def select_labelled(y: torch.Tensor, n_per_class: int, seed: int) -> torch.Tensor:
    """Indices into the training split: ``n_per_class`` examples of each class, chosen at random.

    Classes are visited in increasing order with one ``torch.Generator`` seeded by ``seed``, each
    permuted and cut to its first ``n_per_class`` members (all of them when the class is smaller).

    Args:
        y: ``[N]`` int64 labels of the training split.
    Returns:
        ``[n]`` int64 indices, sorted increasingly.
    Raises:
        ValueError: ``n_per_class < 1``.
    """
    if n_per_class < 1:
        raise ValueError(f"select_labelled: n_labels_per_class must be >= 1, got {n_per_class}")
    y = y.detach().cpu()
    gen = torch.Generator().manual_seed(int(seed))
    picked = []
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c, as_tuple=True)[0]
        order = torch.randperm(len(members), generator=gen)
        picked.append(members[order[:n_per_class]])
    return torch.sort(torch.cat(picked)).values


def labels_do_not_fit(data: DataBundle, n_per_class: int) -> str:
    """Why ``n_per_class`` labelled examples of every class cannot be drawn from ``data``'s training
    split, or '' (a data set without labels is left to the model's or metric's own n/a)."""
    if n_per_class < 1:
        return f"n_labels_per_class must be >= 1, got {n_per_class}"
    if data.train.y is None or data.info.n_classes < 2:
        return ""
    rarest = int(torch.bincount(data.train.y, minlength=data.info.n_classes).min())
    if n_per_class > rarest:
        return (f"n_labels_per_class = {n_per_class}, but the training split of {data.info.name!r} holds only "
                f"{rarest} examples of its rarest class")
    return ""


def index_digest(index: torch.Tensor) -> str:
    """Short SHA-256 of a sorted index set, recorded with results so two selections can be compared."""
    data = torch.sort(index.detach().cpu().to(torch.int64)).values.numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


class LabelledSubset:
    """The labelled examples of a semi-supervised model, for a :class:`benchbed.model.LatentModel`
    subclass (an ``nn.Module``): chosen at setup by :func:`select_labelled`, kept in the checkpoint as
    the buffer ``labelled_index``, and the labelled step's loss.

    Subclasses set ``n_labels_per_class``, ``label_seed`` and ``device`` and call
    :meth:`_choose_labelled` in ``setup`` before ``self.to(device)``, then :meth:`_take_labelled`.
    """

    n_labels_per_class: int
    label_seed: int | None
    device: torch.device
    labelled_index: torch.Tensor
    labelled_digest: str

    def check_data(self, data: DataBundle) -> None:
        """Before training (benchbed's optional model hook): the labelled subset must fit in the training
        split, as the ``accuracy`` metric's reference row checks for its own.

        Raises:
            ValueError: more labels per class asked for than the rarest class has.
        """
        if problem := labels_do_not_fit(data, self.n_labels_per_class):
            raise ValueError(problem)

    @staticmethod
    def _require_labels(ctx: SetupContext, who: str) -> None:
        """Raise before any network is built when the data set has no class labels."""
        if ctx.info.n_classes < 2 or ctx.train.y is None:
            raise ValueError(f"{who}: data set {ctx.info.name!r} has no class labels (n_classes={ctx.info.n_classes})")

    def _choose_labelled(self, ctx: SetupContext) -> None:
        """Pick the labelled training indices (seed: ``label_seed``, or the cell's when it is None)."""
        assert ctx.train.y is not None
        seed = ctx.seed if self.label_seed is None else self.label_seed
        index = select_labelled(ctx.train.y, self.n_labels_per_class, seed)
        self._train = ctx.train
        self.register_buffer("labelled_index", index)  # type: ignore[attr-defined]

    def _take_labelled(self) -> None:
        """Cache the labelled images and labels of ``labelled_index`` on the model's device."""
        index = self.labelled_index.cpu()
        assert self._train.y is not None
        self.labelled_digest = index_digest(index)
        self._x_l = self._train.x[index].to(self.device)
        self._y_l = self._train.y[index].to(self.device)

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """After a restore the labelled index comes from the checkpoint: re-read its examples."""
        self._take_labelled()

    @property
    def n_labelled(self) -> int:
        """Number of labelled training examples the model was allowed to use."""
        return int(self.labelled_index.numel())

    def labelled_cross_entropy(self, logits_of: Callable[[torch.Tensor], torch.Tensor], n: int) -> torch.Tensor:
        """Mean cross-entropy of ``logits_of(x_l) [n, K]`` on ``n`` labelled examples drawn with
        replacement (as the official ``sample_labeled_data``); ``logits_of`` takes data-scale inputs."""
        pick = torch.randint(0, self.n_labelled, (n,), device=self.device)
        return F.cross_entropy(logits_of(self._x_l[pick]), self._y_l[pick])
