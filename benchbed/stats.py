"""Uncertainty over seeds: standard errors, significance against the best entry, rounding to the error.

Published cells show ``mean ± standard error`` over seeds (the standard deviation of the seed values
divided by sqrt(n)).  An entry is marked "not significantly different from the best" when Welch's
unequal-variance t-test between the two sets of seed values does not reject equal means at
:data:`ALPHA` (two-sided).  Entries with fewer than two seed values make no significance claim.
See ``docs/results.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
TEST_NAME = "Welch's t-test"


@dataclass(frozen=True)
class Summary:
    """Mean, standard error and standard deviation of ``n`` seed values (``nan`` where undefined)."""

    mean: float
    se: float
    std: float
    n: int


def summarize(values: Sequence[float]) -> Summary:
    """Mean, standard error (std / sqrt(n), ``nan`` for n < 2) and sample std (ddof = 1); both exactly 0
    when every value is the same."""
    n = len(values)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(mean, math.nan, math.nan, n)
    if min(values) == max(values):  # no spread: exactly 0, not the rounding noise of the mean (~1e-16)
        return Summary(mean, 0.0, 0.0, n)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(mean, std / math.sqrt(n), std, n)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test for equal means, or ``None`` when no test is possible.

    ``None``: either side has fewer than two values.  Both sides without spread: ``1.0`` if the means
    are equal (a tie), else ``0.0`` (deterministic values that differ).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    sa, sb = summarize(a), summarize(b)
    if sa.std == 0 and sb.std == 0:
        return 1.0 if sa.mean == sb.mean else 0.0
    from scipy import stats

    return float(stats.ttest_ind(list(a), list(b), equal_var=False).pvalue)


def not_significantly_different(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> bool | None:
    """Whether Welch's test fails to separate ``a`` from ``b`` at ``alpha``; ``None``: no claim possible."""
    p = welch_p(a, b)
    return None if p is None else p >= alpha


def _decimals(error: float) -> int:
    """Decimal places that keep two significant digits of ``error`` (negative: round left of the point)."""
    return 1 - math.floor(math.log10(abs(error)))


def format_number(value: float, digits: int = 4) -> str:
    """``digits`` significant digits; scientific notation only for very large or small magnitudes."""
    if value is None or math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def format_with_error(mean: float, error: float) -> str:
    """``mean ± error`` rounded to two significant digits of the error (the mean to the same place).

    Without a finite error the mean gets four significant digits; a zero error is shown as ``± 0``.
    Very small errors and very large means use a shared power of ten, taken from the larger of the
    two magnitudes so that the mantissa reads in [1, 10): ``(1.230 ± 0.050)e-06``,
    ``(5.185107 ± 0.000088)e-02``.
    """
    if math.isnan(mean):
        return ""
    if error is None or not math.isfinite(error):
        return format_number(mean)
    if error == 0:
        return f"{format_number(mean)} ± 0"
    d = _decimals(error)
    if d > 6 or abs(mean) >= 1e7:  # exponent shared by mean and error
        # The mean's magnitude, not the error's, so that a tiny error on a moderate mean reads
        # (5.185107 ± 0.000088)e-02 rather than (51851.07 ± 0.88)e-06.
        exp = math.floor(math.log10(max(abs(mean), abs(error))))
        scale = 10.0 ** exp
        dd = _decimals(error / scale)
        return f"({mean / scale:.{dd}f} ± {error / scale:.{dd}f})e{exp:+03d}"
    if d >= 0:
        return f"{mean:.{d}f} ± {error:.{d}f}"
    step = 10.0 ** (-d)
    return f"{round(mean / step) * step:.0f} ± {round(error / step) * step:.0f}"
