"""Shared pieces of the data-set sources: parameter checks, seeded generators, the synthetic base.

Every source here is a class whose keyword-only ``__init__`` is its parameter schema; the
constructor only checks and stores the values (scikit-learn's rule), ``load(seed=...)`` does the work.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch

from benchbed.contracts import DataBundle, DatasetInfo, Split
from benchbed.errors import SuiteError


class ParameterError(SuiteError, ValueError):
    """A data-set parameter has an invalid value (also a ``ValueError`` for plain-Python callers)."""


def check_int(dataset: str, name: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, else :class:`ParameterError` naming data set and parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(f"data set {dataset!r}: parameter {name!r} must be an integer >= {minimum}, got {value!r}")
    return value


def check_float(dataset: str, name: str, value: Any, *, positive: bool = True) -> float:
    """``value`` as a finite float (``> 0`` when ``positive``), else :class:`ParameterError`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        need = "a finite number > 0" if positive else "a finite number"
        raise ParameterError(f"data set {dataset!r}: parameter {name!r} must be {need}, got {value!r}")
    return float(value)


def generator(seed: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for ``seed``; ``stream`` separates independent uses of one seed."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ParameterError(f"seed must be an integer, got {seed!r}")
    # Distinct, reproducible streams: mix the stream index into the seed (2**32 > any seed we use).
    return torch.Generator().manual_seed((seed % 2**32) + stream * 2**32)


class SyntheticVectorSource(ABC):
    """Base of the synthetic vector data sets: one draw of ``n_train + n_val + n_test`` points.

    Subclasses set ``name``, ``dim`` and ``n_classes`` and implement :meth:`sample` and, when the
    density is known, :meth:`log_prob`.  The three splits are consecutive blocks of one i.i.d. draw
    from a generator seeded by ``seed``, so they are deterministic given the seed.
    """

    name: str = ""
    dim: int = 2
    has_density: bool = True
    label_names: tuple[str, ...] = ()

    def _init_sizes(self, n_train: int, n_val: int, n_test: int) -> None:
        self.n_train = check_int(self.name, "n_train", n_train, minimum=1)
        self.n_val = check_int(self.name, "n_val", n_val, minimum=1)
        self.n_test = check_int(self.name, "n_test", n_test, minimum=1)

    @property
    def n_classes(self) -> int:
        """Number of label classes (mixture components, arms, segments); 0 when unlabelled."""
        return 0

    @abstractmethod
    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Draw ``n`` points: ``x`` [n, dim] float32, labels [n] int64 (or ``None``), and the true
        latents [n, ...] where the source exposes them (else ``None``)."""

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`draw` without the latents."""
        x, y, _ = self.draw(n, gen)
        return x, y

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log density (nats) of the generating distribution at ``x`` [B, dim] -> [B]."""
        raise NotImplementedError(f"data set {self.name!r} has no known density")

    def extras(self) -> dict[str, Any]:
        """Extra ground truth put in ``DataBundle.extras`` (true parameters, ...)."""
        return {}

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            shape=(self.dim,),
            kind="vector",
            n_classes=self.n_classes,
            has_density=self.has_density,
            label_names=self.label_names,
        )

    def load(self, *, seed: int) -> DataBundle:
        """Draw the three splits from ``seed``; ``log_prob`` is attached when the density is known.

        ``extras`` holds :meth:`extras` plus, where the source exposes them, the true latents of each
        split under ``extras["latents"] = {"train": ..., "val": ..., "test": ...}``.
        """
        n = self.n_train + self.n_val + self.n_test
        x, y, latents = self.draw(n, generator(seed))
        x = x.to(torch.float32).contiguous()
        edges = (0, self.n_train, self.n_train + self.n_val, n)
        blocks = list(zip(("train", "val", "test"), edges[:-1], edges[1:], strict=True))
        splits = {name: Split(x[a:b].clone(), None if y is None else y[a:b].clone()) for name, a, b in blocks}
        extras = self.extras()
        if latents is not None:
            extras["latents"] = {name: latents[a:b].clone() for name, a, b in blocks}
        return DataBundle(
            info=self.info(),
            log_prob=self.log_prob if self.has_density else None,
            extras=extras,
            **splits,
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not isinstance(v, torch.Tensor))
        return f"{type(self).__name__}({fields})"


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; mean, std^2 I) summed over the last dim; broadcasts ``x`` [..., d] with ``mean``."""
    d = x.shape[-1]
    sq = ((x - mean) ** 2).sum(-1)
    return -0.5 * sq / std**2 - d * (math.log(std) + 0.5 * math.log(2 * math.pi))
