"""A component's ``revision``: bumping it (a fix that changes the numbers) makes stored results of the
old code stale: a model's, sampler's or data set's cells get new run ids and are trained again, a metric
gets a new settings hash and is evaluated again on the stored models; revision 0 changes no identity."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from benchbed.errors import PluginError
from benchbed.evaluation import settings_hash
from benchbed.grid import plan
from benchbed.registry import Registry
from benchbed.specs import ModelSpec
from benchbed.suite import config_hash

BODY = "[models.linear]\n[models.dyn]\n[samplers.walk]\n[metrics.fake_mse]\n"


def revised(registry: Registry, kind: str, name: str, revision: int) -> Registry:
    """A copy of ``registry`` whose component ``kind``/``name`` has ``revision``."""
    out = copy.deepcopy(registry)
    entry = out.entries[kind][name]
    out.entries[kind][name] = dataclasses.replace(entry, spec=dataclasses.replace(entry.spec, revision=revision))
    return out


def run_ids(suite, registry: Registry) -> dict[str, str]:
    return {c.title: c.run_id for c in plan(suite, registry)[0]}


def test_revision_zero_adds_nothing_to_an_identity(make_suite, fake_registry) -> None:
    suite = make_suite(BODY)
    model = suite.models[0]
    assert model.revision == 0 and "revision" not in model.identity()
    # The identity is what it was before revisions existed: component, params, given, roles.
    legacy = {"component": model.component, "params": dict(model.params), "given": dict(model.given), "roles": {}}
    assert config_hash(model.identity()) == config_hash(legacy)


@pytest.mark.parametrize(("kind", "name"), [("model", "linear"), ("dataset", "toy"), ("sampler", "walk")])
def test_a_revised_component_changes_the_run_ids_of_its_cells_only(make_suite, fake_registry, kind: str,
                                                                    name: str) -> None:
    before = run_ids(make_suite(BODY), fake_registry)
    registry = revised(fake_registry, kind, name, 1)
    after = run_ids(make_suite(BODY, registry=registry), registry)
    changed = {title for title in before if before[title] != after[title]}
    uses = {"model": lambda t: t.startswith("linear ·"), "dataset": lambda t: True,
            "sampler": lambda t: " walk " in t}[kind]
    assert changed == {t for t in before if uses(t)} and changed


def test_a_model_without_the_sampler_axis_gets_its_default_samplers_revision(make_suite, fake_registry) -> None:
    body = "[models.dyn]\n[metrics.fake_mse]\n"  # no [samplers]: dyn runs with its default, walk
    registry = revised(fake_registry, "sampler", "walk", 2)
    (before,), (after,) = run_ids(make_suite(body), fake_registry).values(), \
        run_ids(make_suite(body, registry=registry), registry).values()
    assert before != after


def test_a_revised_model_is_trained_again_and_the_others_are_not(make_suite, runner, fake_registry) -> None:
    first, store = runner(make_suite(BODY))
    assert {o.status for o in first.outcomes} == {"ok"}
    registry = revised(fake_registry, "model", "linear", 1)
    second, _ = runner(make_suite(BODY, registry=registry), registry=registry)
    status = {o.title: o.status for o in second.outcomes}
    assert {t: s for t, s in status.items() if t.startswith("linear")} == {"linear · toy · seed 0": "ok"}
    assert all(s == "skipped" for t, s in status.items() if not t.startswith("linear"))
    # The old run stays in the store, under its old id: nothing computed is lost.
    assert len({r["run_id"] for r in store.frame() if r["model"] == "linear"}) == 2


def test_a_revised_metric_is_evaluated_again_without_training(make_suite, runner, fake_registry) -> None:
    suite = make_suite(BODY)
    runner(suite)
    registry = revised(fake_registry, "metric", "fake_mse", 3)
    again = make_suite(BODY, registry=registry)
    assert settings_hash(again.metrics[0]) != settings_hash(suite.metrics[0])
    second, _ = runner(again, registry=registry)
    assert {o.status for o in second.outcomes} == {"evaluated"}


@pytest.mark.parametrize("bad", [-1, True, "1", 1.0])
def test_a_bad_revision_names_the_component(bad: object) -> None:
    with pytest.raises(PluginError, match=r"model 'mine': revision must be a non-negative int"):
        ModelSpec(name="mine", factory=lambda: None, revision=bad)  # type: ignore[arg-type]
