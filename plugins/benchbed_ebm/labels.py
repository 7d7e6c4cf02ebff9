"""The one rule for choosing the labelled examples of a semi-supervised cell.

Both ``svebm`` (which trains on these labels) and the ``accuracy`` metric's logistic-regression
reference row (which fits on them) call :func:`select_labelled`, so the two always see the same
images for the same (training split, labels per class, seed).
"""

from __future__ import annotations

import hashlib

import torch


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


def index_digest(index: torch.Tensor) -> str:
    """Short SHA-256 of a sorted index set, recorded with results so two selections can be compared."""
    data = torch.sort(index.detach().cpu().to(torch.int64)).values.numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]
