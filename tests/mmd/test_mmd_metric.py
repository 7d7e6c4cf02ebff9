"""The registered ``mmd`` metric, exercised through the plugin interface."""

from __future__ import annotations

import pytest
import torch

from benchbed.blocks.mmd import mmd2
from benchbed.errors import NotApplicable
from benchbed.testing import check_metric, evaluate_metric, load_dataset, load_registry_strict, make_eval_context


class SplitSampler:
    """A stand-in model whose samples are rows of a fixed tensor (plus an optional shift)."""

    capabilities = frozenset({"sample"})

    def __init__(self, pool: torch.Tensor, shift: float = 0.0) -> None:
        self.pool, self.shift, self.pos = pool, shift, 0

    def sample(self, n: int) -> torch.Tensor:
        out = self.pool[self.pos : self.pos + n] + self.shift
        self.pos += n
        return out


class EncoderOnly:
    capabilities = frozenset({"infer"})


@pytest.fixture(scope="module")
def gmm8():
    return load_dataset("gmm8", seed=0, n_train=600, n_val=600, n_test=600)


def test_spec_and_schema() -> None:
    check_metric("mmd")
    spec = load_registry_strict().metric("mmd")
    assert spec.higher_is_better is False and spec.requires == frozenset({"sample"})


def test_data_distribution_scores_near_zero_and_shift_scores_high(gmm8) -> None:
    same = make_eval_context(SplitSampler(gmm8.val.x), gmm8)
    shifted = make_eval_context(SplitSampler(gmm8.val.x, shift=0.5), gmm8)
    r_same = evaluate_metric("mmd", same, n_samples=500, n_reference=500)
    r_shift = evaluate_metric("mmd", shifted, n_samples=500, n_reference=500)
    # Null spread of this U-statistic at n = m = 500 is about 0.004 (10 fresh gmm8 draws).
    assert abs(r_same.value) < 0.02
    assert r_shift.value > 0.3
    assert r_shift.value > 20 * abs(r_same.value)


def test_settings_record_the_kernel_and_reproduce_the_value(gmm8) -> None:
    ctx = make_eval_context(SplitSampler(gmm8.val.x, shift=0.2), gmm8)
    res = evaluate_metric("mmd", ctx, n_samples=400, n_reference=300, chunk_size=128)
    s = res.settings
    assert s["estimator"].startswith("unbiased") and s["variance_rule"].startswith("median heuristic")
    assert s["n_samples"] == 400 and s["n_reference"] == 300 and s["split"] == "test"
    assert len(s["variances"]) == len(s["multipliers"])
    # Recomputing from the recorded settings gives the stored value (dense, float64).
    again = mmd2(gmm8.val.x[:400].double() + 0.2, gmm8.test.x[:300].double(), s["variances"], unbiased=True)
    assert res.value == pytest.approx(float(again), rel=1e-4, abs=1e-6)


def test_fixed_variances_and_biased_estimator(gmm8) -> None:
    ctx = make_eval_context(SplitSampler(gmm8.val.x), gmm8)
    res = evaluate_metric("mmd", ctx, n_samples=200, n_reference=200, variances=(1.0, 4.0), unbiased=False)
    assert res.settings["variance_rule"] == "fixed" and res.settings["variances"] == [1.0, 4.0]
    assert res.value == pytest.approx(float(mmd2(gmm8.val.x[:200], gmm8.test.x[:200], (1.0, 4.0))), rel=1e-5)
    assert res.value > 0  # the V-statistic is positive for distinct sets


def test_model_without_samples_is_not_applicable(gmm8) -> None:
    with pytest.raises(NotApplicable, match="lacks sample"):
        evaluate_metric("mmd", make_eval_context(EncoderOnly(), gmm8))


def test_bad_split_is_named(gmm8) -> None:
    with pytest.raises(ValueError, match="split"):
        evaluate_metric("mmd", make_eval_context(SplitSampler(gmm8.val.x), gmm8), split="validation")
