"""A plugin returning the wrong type is named in the error, not the benchbed line that tripped over it: a
metric's ``evaluate`` that returns a bare float fails its record naming the metric and its plugin, and a
sampler's ``sample`` that returns a tensor raises a PluginError naming the sampler's class."""

from __future__ import annotations

import pytest
import torch

from benchbed import MetricSpec, hookimpl
from benchbed.blocks.chains import run_chains
from benchbed.contracts import SampleResult
from benchbed.errors import PluginError
from benchbed.plugins import load_plugins


class BareFloat:
    def evaluate(self, ctx):  # noqa: ANN001, ANN201
        return 0.25


class FloatPlugin:
    @hookimpl
    def benchbed_register_metrics(self, register):  # noqa: ANN001, ANN201
        register(MetricSpec(name="bare_float", factory=BareFloat, higher_is_better=True))


def test_a_metric_returning_a_float_fails_its_record_by_name(helpers, make_suite, runner) -> None:
    registry = load_plugins(extra=[("fake", helpers.FakePlugin()), ("floaty", FloatPlugin())],
                            entry_points_enabled=False, strict=True).registry
    suite = make_suite("[models.linear]\n[metrics.fake_mse]\n[metrics.bare_float]\n", registry=registry)
    summary, store = runner(suite, registry=registry)
    assert [o.status for o in summary.outcomes] == ["ok"]
    (run,) = helpers.model_runs(store)
    rows = {m["metric"]: m for m in run["metrics"]}
    assert rows["fake_mse"]["status"] == "ok"
    assert rows["bare_float"]["status"] == "failed"
    assert rows["bare_float"]["reason"] == ("metric 'bare_float' (plugin 'floaty'): evaluate() returned a float, "
                                            "not a benchbed.contracts.MetricResult")


class TensorSampler:
    def sample(self, log_density, z0):  # noqa: ANN001, ANN201
        return z0.clone()


class GoodSampler:
    def sample(self, log_density, z0):  # noqa: ANN001, ANN201
        return SampleResult(z0 + 1, {"steps": 2.0})


def test_a_sampler_returning_a_tensor_is_named() -> None:
    z0 = torch.zeros(4, 2)
    with pytest.raises(PluginError, match=r"sampler TensorSampler \(.*test_return_types\): sample\(\) returned a "
                                          r"Tensor, not a benchbed.contracts.SampleResult"):
        run_chains(TensorSampler(), lambda z: -z.pow(2).sum(1), z0)
    result = run_chains(GoodSampler(), lambda z: -z.pow(2).sum(1), z0, rounds=2)
    assert torch.equal(result.z, z0 + 2) and result.diagnostics["steps"] == 4.0
