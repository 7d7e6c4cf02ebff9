"""The ``mmd`` metric: MMD^2 between model samples and a reference split (lower is better).

Kernel: ``sum_q exp(-d^2 / (2 v_q))`` on flattened examples (data scale: [0, 1] for images).
Default scales (``variances=None``): the median heuristic on the *reference* examples only,
``v_q = m_q * median(d^2) / 2`` with ``m_q`` in :data:`~benchbed.blocks.mmd.MEDIAN_MULTIPLIERS`
(1/256 ... 4).  It adapts to the dimension and scale of vector and image data alike, and since it
never looks at the model's samples every model of a data set is measured with the same kernel.
The variances actually used, the rule that produced them, the estimator and the sample counts are
all returned in ``settings``.

Estimator: the unbiased U-statistic by default (its expectation is 0 when the model matches the
data, so values are comparable across sample counts; it can be slightly negative), or the biased
V-statistic.  The computation is chunked, so large sample counts stay within bounded memory.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Ge, Gt, MinLen

from benchbed.blocks.mmd import MEDIAN_MULTIPLIERS, as_kernel, median_sq_dist, mmd2
from benchbed.contracts import EvalContext, MetricResult

_SPLITS = ("train", "val", "test")


class SampleMMD:
    """MMD^2(model samples, reference split).

    Args:
        n_samples: generated examples.
        n_reference: reference examples, the first ones of the split (``None`` = all of it).
        split: the reference split ("test" by default).
        variances: fixed kernel variances; ``None`` = median heuristic on the reference.
        multipliers: multipliers of ``median(d^2) / 2`` for the median heuristic.
        unbiased: U-statistic (default) or the biased V-statistic.
        chunk_size: block size of the memory-bounded computation (``None`` = dense).
        batch_size: samples drawn per ``model.sample`` call.
    """

    def __init__(
        self,
        *,
        n_samples: Annotated[int, Ge(2)] = 2000,
        n_reference: Annotated[int | None, Ge(2)] = 2000,
        split: str = "test",
        variances: Annotated[tuple[Annotated[float, Gt(0)], ...], MinLen(1)] | None = None,
        multipliers: Annotated[tuple[Annotated[float, Gt(0)], ...], MinLen(1)] = MEDIAN_MULTIPLIERS,
        unbiased: bool = True,
        chunk_size: Annotated[int | None, Gt(0)] = 1024,
        batch_size: Annotated[int, Gt(0)] = 500,
    ) -> None:
        self.n_samples = n_samples
        self.n_reference = n_reference
        self.split = split
        self.variances = None if variances is None else tuple(variances)
        self.multipliers = tuple(multipliers)
        self.unbiased = unbiased
        self.chunk_size = chunk_size
        self.batch_size = batch_size

    def _reference(self, ctx: EvalContext) -> torch.Tensor:
        if self.split not in _SPLITS:
            raise ValueError(f"metric 'mmd': parameter 'split' must be one of {_SPLITS}, got {self.split!r}")
        x = getattr(ctx.data, self.split).x
        if self.n_reference is not None:
            if self.n_reference < 2:
                raise ValueError(f"metric 'mmd': parameter 'n_reference' must be >= 2, got {self.n_reference}")
            x = x[: self.n_reference]
        return x.reshape(x.shape[0], -1).float()

    def _samples(self, ctx: EvalContext) -> torch.Tensor:
        if self.n_samples < 2 or self.batch_size < 1:
            raise ValueError(f"metric 'mmd': need n_samples >= 2 and batch_size >= 1, got "
                             f"{self.n_samples}, {self.batch_size}")
        out, left = [], self.n_samples
        with torch.no_grad():
            while left > 0:
                k = min(self.batch_size, left)
                out.append(ctx.model.sample(k).detach().cpu().reshape(k, -1).float())
                left -= k
        s = torch.cat(out)
        if not torch.isfinite(s).all():
            raise ValueError(f"metric 'mmd': model {type(ctx.model).__name__} produced non-finite samples")
        return s

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        """MMD^2 with the settings that produced it (kernel, rule, estimator, counts, split)."""
        ref = self._reference(ctx)
        settings: dict[str, object] = {}
        if self.variances is None:
            med = median_sq_dist(ref, seed=0)
            variances = tuple(m * med / 2.0 for m in self.multipliers)
            settings.update(variance_rule="median heuristic on the reference: v = m * median(d^2) / 2",
                            median_sq_dist=med, multipliers=list(self.multipliers))
        else:
            variances = self.variances
            settings["variance_rule"] = "fixed"
        kernel = as_kernel(variances)  # validates the variances
        value = float(mmd2(self._samples(ctx), ref, kernel, unbiased=self.unbiased, chunk_size=self.chunk_size))
        if not math.isfinite(value):
            raise ValueError("metric 'mmd': the estimate is not finite")
        settings.update(
            estimator="unbiased U-statistic" if self.unbiased else "biased V-statistic (diagonal included)",
            kernel="sum_q exp(-||x - y||^2 / (2 v_q)) on flattened data-scale examples",
            variances=list(kernel.variances),
            n_samples=self.n_samples,
            n_reference=int(ref.shape[0]),
            split=self.split,
            chunk_size=self.chunk_size,
        )
        return MetricResult(value=value, settings=settings)
