"""Deterministic, stratified splitting of labelled data (given a seed).

Stratified means each class keeps (to within one example) its share in every part, so a small
validation split of a 10-class data set still holds every class and ``hold_out`` behaves alike on
all splits.
"""

from __future__ import annotations

import numpy as np
import torch

from benchbed.contracts import Split
from benchbed_datasets._base import ParameterError


def _rng(seed: int, stream: int) -> np.random.Generator:
    # numpy wants non-negative entropy; the stream keeps two uses of one seed independent.
    return np.random.default_rng([seed % 2**32, stream])


def stratified_pick(y: np.ndarray, n_pick: int, *, seed: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Choose ``n_pick`` of the ``len(y)`` examples, stratified by label ``y``.

    Per-class quotas are ``n_pick * count_c / N`` rounded by largest remainder, so they sum to
    ``n_pick`` exactly.  Returns ``(picked, rest)``: sorted index arrays partitioning ``arange(N)``.
    """
    y = np.asarray(y)
    n = len(y)
    if not 0 <= n_pick <= n:
        raise ParameterError(f"cannot pick {n_pick} examples out of {n}")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = counts * (n_pick / n) if n else counts * 0.0
    quota = np.floor(exact).astype(np.int64)
    short = n_pick - int(quota.sum())
    # Largest remainder; a stable sort breaks ties by class order, so the result is deterministic.
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[:short]] += 1
    rng = _rng(seed, stream)
    picked = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        picked.append(rng.permutation(members)[: quota[c]])
    chosen = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return chosen, np.flatnonzero(~mask)


def take(x: torch.Tensor, y: torch.Tensor | None, idx: np.ndarray) -> Split:
    """The rows ``idx`` of ``(x, y)`` as a :class:`Split` (contiguous copies)."""
    index = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
    return Split(x[index].contiguous(), None if y is None else y[index].contiguous())


def carve(
    x: torch.Tensor, y: torch.Tensor | None, n_val: int, *, seed: int, n_keep: int | None = None, stream: int = 0
) -> tuple[Split, Split]:
    """Split a training set into ``(train, val)``: ``n_val`` stratified examples go to validation.

    ``n_keep`` (optional) then keeps a stratified subset of that many training examples, for quick
    runs on a small CPU.  Both choices are deterministic given ``seed``.
    """
    labels = np.zeros(len(x), dtype=np.int64) if y is None else y.numpy()
    val_idx, train_idx = stratified_pick(labels, n_val, seed=seed, stream=stream)
    if n_keep is not None and n_keep < len(train_idx):
        keep, _ = stratified_pick(labels[train_idx], n_keep, seed=seed, stream=stream + 1)
        train_idx = train_idx[keep]
    return take(x, y, train_idx), take(x, y, val_idx)
