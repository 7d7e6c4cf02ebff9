"""Held-out trainings as cells of the grid, engine options as run options, one-shot models.

The fake components of conftest.py, plus a metric that declares its held-out trainings, a one-shot
model and a model that records the engine options its setup saw.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from benchbed import MetricSpec, ModelSpec, hookimpl
from benchbed.contracts import DataBundle, DatasetInfo, EngineOptions, EvalContext, MetricResult, SetupContext, Split
from benchbed.execute import run_suite
from benchbed.grid import plan, plan_run
from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.runner import CellRunner, RunOptions
from benchbed.store import Store
from benchbed.tables import build


class DeclaredHeldOut:
    """Mean over held-out classes of the variant model's reconstruction error on a random half of the
    test split (drawn after the variants are obtained: the value depends on the RNG stream)."""

    def __init__(self, *, classes: tuple[int, ...] = ()) -> None:
        self.classes = classes

    def held_out_trainings(self, info: DatasetInfo) -> list[tuple[int, ...]]:
        return [(c,) for c in (self.classes or tuple(range(info.n_classes)))]

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        values = []
        for c in self.classes or tuple(range(ctx.data.info.n_classes)):
            with torch.enable_grad():
                model = ctx.train_variant(ctx.data.hold_out((c,)))
            x = ctx.data.test.x.to(ctx.device)
            x = x[torch.randperm(len(x))[: len(x) // 2]]
            values.append(float((model.reconstruct(x) - x).pow(2).mean()))
        return MetricResult(sum(values) / len(values))


class MeanModel:
    """A one-shot model: ``fit`` stores the training mean; samples are that mean plus noise."""

    capabilities = frozenset({"sample", "reconstruct"})
    fits = 0

    def __init__(self, *, noise: float = 0.1) -> None:
        self.noise = noise

    def setup(self, ctx: SetupContext) -> None:
        self.shape = ctx.info.shape
        self.mean = torch.zeros(ctx.info.shape)

    def fit(self, train: Split) -> dict[str, float]:
        MeanModel.fits += 1
        self.mean = train.x.mean(0)
        return {"spread": float(train.x.var(0).sum())}

    def checkpoint(self) -> dict[str, Any]:
        return {"mean": self.mean}

    def restore(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean.expand_as(x).clone()

    def sample(self, n: int) -> torch.Tensor:
        return self.mean + self.noise * torch.randn(n, *self.shape)


def _engine_probe(seen: list[EngineOptions]) -> Callable[..., Any]:
    def make(**params: Any) -> Any:
        return _Probe(seen, **params)

    return make


class _Probe(MeanModel):
    def __init__(self, seen: list[EngineOptions], **params: Any) -> None:
        super().__init__(**params)
        self.seen = seen

    def setup(self, ctx: SetupContext) -> None:
        super().setup(ctx)
        self.seen.append(ctx.engine)


SEEN: list[EngineOptions] = []


class VariantPlugin:
    @hookimpl
    def benchbed_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        register(ModelSpec(name="mean", factory=MeanModel, description="one-shot mean", one_shot=True))
        register(ModelSpec(name="probe", factory=_engine_probe(SEEN), description="records ctx.engine",
                           one_shot=True))

    @hookimpl
    def benchbed_register_metrics(self, register: Callable[[MetricSpec], None]) -> None:
        register(MetricSpec(name="held", factory=DeclaredHeldOut, higher_is_better=False, needs_labels=True,
                            requires=frozenset({"reconstruct"})))


@pytest.fixture
def registry(helpers) -> Registry:
    return load_plugins(extra=[("fake", helpers.FakePlugin()), ("variants", VariantPlugin())],
                        entry_points_enabled=False, strict=True).registry


LABELLED = """\
name = "t"
seeds = [0]
[budget]
steps = 24
batch_size = 16
[datasets.toy]
labels = true
"""


def _info(registry: Registry) -> Callable[..., DatasetInfo]:
    return lambda entry: registry.dataset(entry.component).factory(**entry.params).load(seed=0).info


def test_the_plan_puts_each_held_out_training_before_its_cell_and_leaves_run_ids_alone(make_suite, registry) -> None:
    suite = make_suite("[models.linear]\n[metrics.held]\n[metrics.again]\ncomponent = 'held'\nclasses = [1]\n",
                       header=LABELLED, registry=registry)
    cells, _ = plan(suite, registry)
    planned = plan_run(suite, registry, _info(registry))
    assert [c.run_id for c in planned.cells] == [c.run_id for c in cells]  # the suite's cells are unchanged
    (cell,) = cells
    order = planned.order
    assert [c.held_out for c in order] == [(0,), (1,), ()]  # one training per class, shared by both metrics
    assert order[-1] == cell
    variant = order[1]
    assert variant.config == {**cell.config, "held_out": [1]} and variant.run_id != cell.run_id
    assert variant.title == "linear · toy · seed 0 · held out [1]"
    assert variant.identity()["kind"] == "variant" and "kind" not in cell.identity()
    assert plan_run(suite, registry).order == [cell]  # without the data's classes nothing is planned


def test_no_held_out_training_where_the_metric_does_not_apply(make_suite, registry) -> None:
    suite = make_suite("[models.linear]\n[metrics.held]\n", registry=registry)  # toy without labels
    assert [c.held_out for c in plan_run(suite, registry, _info(registry)).order] == [()]


def _values(store: Store, helpers) -> dict[str, float]:
    (run,) = helpers.model_runs(store)
    return {m["metric"]: m["value"] for m in run["metrics"]}


def test_held_out_trainings_are_cells_and_give_the_same_values_as_in_memory_training(
        make_suite, runner, registry, helpers, monkeypatch) -> None:
    suite = make_suite("[models.linear]\n[metrics.held]\n[metrics.fake_mse]\n", header=LABELLED, registry=registry)
    summary, store = runner(suite, "cells", registry=registry)
    assert [(o.title, o.status) for o in summary.outcomes] == [
        ("linear · toy · seed 0 · held out [0]", "ok"), ("linear · toy · seed 0 · held out [1]", "ok"),
        ("linear · toy · seed 0", "ok")]
    variants = [r for r in store.frame() if r["kind"] == "variant"]
    assert len(variants) == 2 and all(r["run_status"] == "ok" and r["metric"] is None for r in variants)
    stored = store.run(variants[0]["run_id"])
    assert stored["config"]["held_out"] == [0] and stored["provenance"]["components"]["model"]["name"] == "linear"
    assert stored["n_params"] > 0 and stored["curves"]
    cells_values = _values(store, helpers)

    # the path before held-out trainings were cells: trained in memory inside the metric
    monkeypatch.setattr(CellRunner, "_variant_model", lambda self, cell, variant: self._train_in_memory(cell, variant))
    summary, store_b = runner(suite, "memory", registry=registry)
    assert [o.status for o in summary.outcomes] == ["ok", "ok", "ok"]  # the variant cells, trained but unused
    assert _values(store_b, helpers) == cells_values  # identical values, not merely close


def test_variants_are_no_rows_of_the_tables(make_suite, runner, registry) -> None:
    suite = make_suite("[models.linear]\n[metrics.held]\n", header=LABELLED, registry=registry)
    _, store = runner(suite, registry=registry)
    board = build(store, suite, registry)
    ((table,),) = [board.tables]
    assert [r.label for r in table.rows] == ["linear"]
    (row,) = table.rows
    assert row.cells["held"].status == "ok" and len(row.run_ids) == 1
    assert set(board.run_ids()) == {row.run_ids[0]}


def test_a_base_cell_runs_a_missing_held_out_training_itself_and_a_new_metric_restores_it(
        make_suite, registry, helpers, monkeypatch, tmp_path) -> None:
    """Variants not run first (another executor's queue) are run by the cell that needs them, as cells;
    a metric added later finds them finished and restores them from their checkpoints."""
    suite = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\n", header=LABELLED, registry=registry)
    planned = plan_run(suite, registry, _info(registry))
    base = planned.cells[0]
    store = Store(tmp_path / "direct.sqlite")
    # the cell runs before its variant: it runs the variant itself, as that cell
    assert CellRunner(suite, registry, store, RunOptions(bars=False)).run(base).status == "ok"
    (variant,) = planned.variants[base.run_id]
    assert store.status(variant.run_id) == "ok" and store.run(variant.run_id)["kind"] == "variant"
    value = _values(store, helpers)["held"]

    monkeypatch.setattr(helpers.LinearAE, "setups", 0)
    again = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\n[metrics.held2]\ncomponent = 'held'\n"
                       "classes = [1]\n", header=LABELLED, registry=registry)
    outcome = CellRunner(again, registry, store, RunOptions(bars=False)).run(base)
    assert outcome.status == "evaluated"
    assert _values(store, helpers) == {"held": value, "held2": value}
    assert helpers.LinearAE.setups == 2  # the cell's model and its variant, both restored: nothing trained
    store.close()


def test_engine_options_reach_setup_and_provenance_but_not_run_ids(make_suite, runner, registry, helpers) -> None:
    SEEN.clear()
    suite = make_suite("[models.probe]\n[metrics.fake_mse]\n", registry=registry)
    engine = EngineOptions(fused=False, concurrent_chains=False, threads=1)
    _, store = runner(suite, "a", registry=registry, engine=engine)
    _, other = runner(suite, "b", registry=registry)
    assert SEEN == [engine, EngineOptions()]
    (a,), (b,) = helpers.model_runs(store), helpers.model_runs(other)
    assert a["run_id"] == b["run_id"] and a["config"] == b["config"]
    assert a["provenance"]["engine"] == {"fused": False, "concurrent_chains": False, "threads": 1}
    assert b["provenance"]["engine"] == {"fused": None, "concurrent_chains": None, "threads": None}


def test_a_one_shot_model_is_fitted_once_and_resumes(make_suite, runner, registry, helpers, monkeypatch) -> None:
    monkeypatch.setattr(MeanModel, "fits", 0)
    suite = make_suite("[models.mean]\n[metrics.fake_mse]\n", registry=registry)
    summary, store = runner(suite, registry=registry)
    assert [o.status for o in summary.outcomes] == ["ok"] and MeanModel.fits == 1
    (run,) = helpers.model_runs(store)
    assert run["train_steps"] == 0 and run["n_params"] == 0 and run["train_time"] >= 0
    assert [set(p) for p in run["curves"]] == [{"step", "spread"}]
    assert run["config"]["budget"] is None  # the budget does not apply, so it is not part of the run id
    assert run["metrics"][0]["status"] == "ok"
    summary, _ = runner(suite, registry=registry)
    assert [o.status for o in summary.outcomes] == ["skipped"] and MeanModel.fits == 1


def test_testing_fit_calls_fit_once_for_a_one_shot_model(registry, monkeypatch) -> None:
    from benchbed.testing import fit

    monkeypatch.setattr(MeanModel, "fits", 0)
    bundle: DataBundle = registry.dataset("toy").factory().load(seed=0)
    model, history = fit("mean", bundle, steps=50, registry=registry)
    assert MeanModel.fits == 1 and len(history) == 1
    assert torch.equal(model.mean, bundle.train.x.mean(0))


BUILTIN = """\
name = "outlier"
seeds = [0]
[budget]
steps = 30
batch_size = 64
[datasets.gmm8]
n_train = 256
n_val = 64
n_test = 64
[models.vae]
latent_dim = 2
hidden = [16]
[models.gmmn]
[metrics.outlier_auroc]
classes = [1]
n_examples = 48
[metrics.recon_mse]
"""


@pytest.mark.slow
def test_outlier_auroc_is_the_same_through_held_out_cells_as_through_in_memory_training(
        tmp_path, monkeypatch) -> None:
    from benchbed.execute import run_suite
    from benchbed.suite import parse_suite

    registry = load_plugins(strict=False).registry
    suite = parse_suite(BUILTIN, registry, path=tmp_path / "suite.toml")

    def values(name: str) -> dict[tuple[str, str], float]:
        store = Store(tmp_path / name / "results.sqlite")
        summary = run_suite(suite, registry, store, options=RunOptions(bars=False))
        assert all(o.status == "ok" for o in summary.outcomes), summary.outcomes
        out = {(r["model"], r["metric"]): r["value"] for r in store.frame() if r["kind"] == "model"}
        store.close()
        return out

    through_cells = values("cells")
    assert len([k for k in through_cells if k[1] == "outlier_auroc"]) == 2
    monkeypatch.setattr(CellRunner, "_variant_model", lambda self, cell, variant: self._train_in_memory(cell, variant))
    assert values("memory") == through_cells


def test_a_suite_of_one_shot_models_may_omit_the_budget(make_suite, registry) -> None:
    from benchbed.errors import SuiteError

    header = 'name = "t"\nseeds = [0]\n[datasets.toy]\n'
    suite = make_suite("[models.mean]\n[metrics.fake_mse]\n", header=header, registry=registry)
    (cell,), _ = plan(suite, registry)
    assert cell.one_shot and cell.config["budget"] is None
    with pytest.raises(SuiteError, match=r"\[budget\] needs 'steps'"):
        make_suite("[models.mean]\n[models.linear]\n[metrics.fake_mse]\n", header=header, registry=registry)


def test_a_held_out_training_another_live_process_holds_is_waited_for(
        make_suite, registry, helpers, monkeypatch, tmp_path) -> None:
    import threading
    import time

    from benchbed import runner as runner_module

    suite = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\n", header=LABELLED, registry=registry)
    planned = plan_run(suite, registry, _info(registry))
    base = planned.cells[0]
    (variant,) = planned.variants[base.run_id]
    store = Store(tmp_path / "wait.sqlite")
    assert CellRunner(suite, registry, store, RunOptions(bars=False)).run(variant).status == "ok"
    # as if another host were still running it, with a fresh heartbeat; it finishes a moment later
    helpers.set_columns(store, variant.run_id, status="running", host="elsewhere", pid=1, heartbeat=time.time())
    monkeypatch.setattr(runner_module, "WAIT_POLL_S", 0.05)

    def finish() -> None:
        time.sleep(0.5)
        other = Store(store.path)
        helpers.set_columns(other, variant.run_id, status="ok")
        other.close()

    thread = threading.Thread(target=finish)
    thread.start()
    t0 = time.perf_counter()
    outcome = CellRunner(suite, registry, store, RunOptions(bars=False)).run(base)
    thread.join()
    assert outcome.status == "ok" and time.perf_counter() - t0 >= 0.5
    assert store.run(variant.run_id)["train_count"] == 1  # waited for and restored, never trained again
    (run,) = helpers.model_runs(store)
    assert run["metrics"][0]["status"] == "ok"
    store.close()


def test_a_failed_held_out_training_fails_the_metric_not_the_cell(make_suite, registry, helpers) -> None:
    suite = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\n[metrics.fake_mse]\n",
                       header=LABELLED, registry=registry)
    planned = plan_run(suite, registry, _info(registry))
    (variant,) = planned.variants[planned.cells[0].run_id]
    store = Store(Path(suite.path).parent / "failed.sqlite")
    assert store.claim(variant.run_id, variant.identity()).acquired
    store.finish(variant.run_id, status="failed", error="RuntimeError: planted")
    outcome = CellRunner(suite, registry, store, RunOptions(bars=False)).run(planned.cells[0])
    assert outcome.status == "ok"
    rows = {m["metric"]: m for m in helpers.model_runs(store)[0]["metrics"]}
    assert rows["fake_mse"]["status"] == "ok" and rows["held"]["status"] == "failed"
    reason = rows["held"]["reason"]
    assert reason.startswith("HeldOutTrainingFailed: held-out training 'linear · toy · seed 0 · held out [1]'")
    assert "failed: RuntimeError: planted" in reason
    store.close()


def test_a_store_of_published_runs_trains_no_held_out_cell(make_suite, runner, registry, tmp_path) -> None:
    """A fresh clone imports the published runs (held-out cells are not published): its run finds every suite
    cell complete and trains nothing, not even the held-out trainings; adding a metric that needs them
    does train them (the cell needs work again)."""
    from benchbed import published

    suite = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\n", header=LABELLED, registry=registry)
    _, store = runner(suite, "origin", registry=registry)
    runs = tmp_path / "runs.jsonl"
    published.export_runs(store, build(store, suite, registry).run_ids(), runs, suite.name)
    clone = Store(tmp_path / "clone" / "results.sqlite")
    published.import_runs(clone, runs)
    summary = run_suite(suite, registry, clone, options=RunOptions(bars=False))
    assert [(o.title, o.status) for o in summary.outcomes] == [("linear · toy · seed 0", "skipped")]
    assert not [r for r in clone.frame() if r["kind"] == "variant"]
    again = make_suite("[models.linear]\n[metrics.held]\nclasses = [1]\n[metrics.held2]\ncomponent = 'held'\n"
                       "classes = [0]\n", header=LABELLED, registry=registry, name="again.toml")
    summary = run_suite(again, registry, clone, options=RunOptions(bars=False))
    assert [o.title for o in summary.outcomes][:2] == ["linear · toy · seed 0 · held out [1]",
                                                       "linear · toy · seed 0 · held out [0]"]
    clone.close()
