"""A metric entry's ``datasets`` key: the metric (and its held-out trainings) only on those data sets,
``n/a`` with the reason elsewhere, its column left out of those tables; bad values name file and key."""

from __future__ import annotations

import pytest

from benchbed.errors import SuiteError
from benchbed.grid import plan_run
from benchbed.registry import Registry
from benchbed.tables import build
from tests.core.test_variants import LABELLED, VariantPlugin, _info  # noqa: F401 - the fixture below uses them

TWO = LABELLED + "[datasets.toy_b]\ncomponent = 'toy'\nlabels = true\nn_train = 48\n"


@pytest.fixture
def registry(helpers) -> Registry:
    from benchbed.plugins import load_plugins

    return load_plugins(extra=[("fake", helpers.FakePlugin()), ("variants", VariantPlugin())],
                        entry_points_enabled=False, strict=True).registry


def test_held_out_trainings_only_on_the_data_sets_the_metric_is_asked_on(make_suite, registry) -> None:
    suite = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\ndatasets = ['toy_b']\n[metrics.fake_mse]\n",
                       header=TWO, registry=registry)
    planned = plan_run(suite, registry, _info(registry))
    assert [(c.dataset.label, c.held_out) for c in planned.order] == [("toy", ()), ("toy_b", (1,)), ("toy_b", ())]
    everywhere = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\n", header=TWO, registry=registry)
    assert len(plan_run(everywhere, registry, _info(registry)).order) == 4


def test_elsewhere_the_metric_is_na_with_the_reason_and_its_column_is_left_out(make_suite, runner, registry) -> None:
    suite = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\ndatasets = ['toy_b']\n[metrics.fake_mse]\n",
                       header=TWO, registry=registry)
    summary, store = runner(suite, registry=registry)
    assert all(o.status == "ok" for o in summary.outcomes)
    records = {(r["dataset"], r["metric"]): r for r in store.frame() if r["kind"] == "model"}
    assert records[("toy_b", "held")]["metric_status"] == "ok"
    assert records[("toy", "held")]["metric_status"] == "n/a"
    assert "asks for held on toy_b only ([metrics.held] datasets)" in records[("toy", "held")]["reason"]
    assert records[("toy", "fake_mse")]["metric_status"] == "ok"
    board = build(store, suite, registry)
    tables = {t.dataset: t for t in board.tables}
    assert [c.key for c in tables["toy"].metric_columns] == ["fake_mse"]
    assert [c.key for c in tables["toy_b"].metric_columns] == ["held", "fake_mse"]
    ((col, reason),) = tables["toy"].omitted
    assert col.key == "held" and "toy_b only" in reason


def test_adding_the_restriction_changes_the_metric_settings_but_no_run_id(make_suite, registry) -> None:
    from benchbed.evaluation import settings_hash
    from benchbed.grid import plan

    a = make_suite("[models.linear]\n[metrics.held]\n", header=TWO, registry=registry)
    b = make_suite("[models.linear]\n[metrics.held]\ndatasets = ['toy']\n", header=TWO, registry=registry)
    assert [c.run_id for c in plan(a, registry)[0]] == [c.run_id for c in plan(b, registry)[0]]
    assert settings_hash(a.metrics[0]) != settings_hash(b.metrics[0])
    c = make_suite("[models.linear]\n[metrics.held]\ndatasets = ['toy_b', 'toy']\n", header=TWO, registry=registry)
    assert settings_hash(c.metrics[0]) != settings_hash(b.metrics[0])


@pytest.mark.parametrize("value", ["'toy'", "[]", "['nope']", "['toy', 'toy']", "[1]"])
def test_bad_values_name_the_file_the_key_and_the_value(make_suite, registry, value: str) -> None:
    with pytest.raises(SuiteError, match=r"suite\.toml.*\[metrics\.held\] 'datasets'.*(toy|nope|\[\]|1)"):
        make_suite(f"[models.linear]\n[metrics.held]\ndatasets = {value}\n", header=TWO, registry=registry)


def test_datasets_is_a_metric_key_only(make_suite, registry) -> None:
    with pytest.raises(SuiteError, match="datasets"):
        make_suite("[models.linear]\ndatasets = ['toy']\n[metrics.fake_mse]\n", header=TWO, registry=registry)
