"""scikit-learn's 8x8 handwritten digits (1797 images, shipped with scikit-learn: works offline).

Pixels are integers 0..16 in the source; we divide by 16 so images are float32 in [0, 1], shaped
``(1, 8, 8)``.  There is no official test split: test and validation are stratified random subsets
chosen from the seed (test first, then validation from the rest), and the remainder is training.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from annotated_types import Gt

from benchbed.contracts import DataBundle, DatasetInfo
from benchbed_datasets._base import ParameterError, check_int
from benchbed_datasets.splits import stratified_pick, take

N_DIGITS = 1797


class Digits:
    """The 8x8 digits, labels 0..9.

    Args:
        n_val: validation examples (stratified).
        n_test: test examples (stratified); the training split gets the remaining examples.
    """

    name = "digits"

    def __init__(self, *, n_val: Annotated[int, Gt(0)] = 180, n_test: Annotated[int, Gt(0)] = 360) -> None:
        self.n_val = check_int(self.name, "n_val", n_val, minimum=1)
        self.n_test = check_int(self.name, "n_test", n_test, minimum=1)
        if self.n_val + self.n_test >= N_DIGITS:
            raise ParameterError(
                f"data set 'digits': n_val + n_test = {self.n_val + self.n_test} leaves no training "
                f"examples out of {N_DIGITS}"
            )

    def load(self, *, seed: int) -> DataBundle:
        """Read the digits from scikit-learn and split them (deterministic given ``seed``)."""
        from sklearn.datasets import load_digits

        raw = load_digits()
        x = torch.from_numpy((raw.images / 16.0).astype(np.float32)).unsqueeze(1)  # [N, 1, 8, 8]
        y = torch.from_numpy(raw.target.astype(np.int64))
        test_idx, rest = stratified_pick(raw.target, self.n_test, seed=seed, stream=0)
        val_in_rest, train_in_rest = stratified_pick(raw.target[rest], self.n_val, seed=seed, stream=1)
        info = DatasetInfo(
            name=self.name,
            shape=(1, 8, 8),
            kind="image",
            n_classes=10,
            label_names=tuple(str(d) for d in range(10)),
        )
        return DataBundle(
            info=info,
            train=take(x, y, rest[train_in_rest]),
            val=take(x, y, rest[val_in_rest]),
            test=take(x, y, test_idx),
        )

    def __repr__(self) -> str:
        return f"Digits(n_val={self.n_val}, n_test={self.n_test})"
