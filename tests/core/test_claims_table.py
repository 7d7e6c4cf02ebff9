"""Claims as data (benchbed.claims) and the claims table (benchbed.claims_table): the file format and its
errors, plugin-registered claims, verdicts on stores with known values, and the published outputs.

(``test_claims.py`` is about the store's claims on cells, a different thing.)"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchbed import hookimpl, leaderboard, tables
from benchbed.claims import (
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_MEASURED,
    NOT_REPRODUCED,
    REPRODUCED,
    TOO_FEW,
    ClaimError,
    claims_for,
    curve_value,
    evaluate_all,
    parse_claims,
    welch,
)
from benchbed.claims_table import CLAIMS_CSV, CSV_HEADER, to_csv, to_html, to_markdown, to_records
from benchbed.errors import PluginError
from benchbed.grid import plan
from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.specs import ClaimSpec
from benchbed.store import Store
from benchbed.suite import Suite

HEADER = 'name = "cl"\nseeds = {seeds}\n[budget]\nsteps = 24\nbatch_size = 16\n[datasets.toy]\n'

CLAIM = """
[claims.{cid}]
paper = "Doe et al. 2020"
statement = "a beats b"
dataset = "toy"
{extra}
better = "{better}"
worse = "{worse}"
"""


def claim_text(cid: str = "a_beats_b", better: str = "a", worse: str = "b", extra: str = 'metric = "fake_est"') -> str:
    return CLAIM.format(cid=cid, better=better, worse=worse, extra=extra)


# -- the file format --------------------------------------------------------------------------------


def test_a_claims_file_parses_into_specs() -> None:
    parsed = parse_claims(claim_text() + claim_text("curve_claim", extra='curve = "loss"\nhigher_is_better = false')
                          + "[claims.dropped]\nenabled = false\n")
    first, second = parsed.claims
    assert first == ClaimSpec(id="a_beats_b", paper="Doe et al. 2020", statement="a beats b", dataset="toy",
                              metric="fake_est", better="a", worse="b")
    assert second.curve == "loss" and second.higher_is_better is False and not second.metric
    assert parsed.disabled == ("dropped",)


@pytest.mark.parametrize(("text", "expected"), [
    (claim_text(extra='metric = "fake_est"\nmetirc = "x"'),
     "claim 'a_beats_b': unknown key 'metirc' = 'x' (claims.toml, line 7); did you mean 'metric'?"),
    (claim_text().replace('paper = "Doe et al. 2020"\n', ""),
     "claim 'a_beats_b' (claims.toml, line 2) lacks key 'paper'"),
    (claim_text(extra='metric = "fake_est"\ncurve = "loss"'), "give exactly one of metric and curve"),
    (claim_text(extra=""), "give exactly one of metric and curve (metric = '', curve = '')"),
    (claim_text(extra='curve = "loss"'), "claim 'a_beats_b': curve = 'loss' needs higher_is_better"),
    (claim_text(extra='metric = "fake_est"\nhigher_is_better = true'),
     "higher_is_better = True is not allowed with metric = 'fake_est'"),
    (claim_text(extra='metric = "fake_est"\ndetail = "per_class."'), "detail = 'per_class.' must be a dotted key"),
    (claim_text(worse="a"), "better = worse = 'a'"),
    (claim_text(extra="metric = 3"), "claim 'a_beats_b': metric = 3 must be a string (claims.toml, line 6)"),
    (claim_text(cid="Bad-Id"), "claim id 'Bad-Id' is invalid"),
    ('title = "x"\n' + claim_text(), "unknown top-level key 'title'"),
    ("[claims.x\n", "invalid TOML"),
    ("[claims.x]\nenabled = 1\n", "claim 'x': enabled = 1 (claims.toml, line 2) must be true or false"),
])
def test_malformed_claims_files_say_file_claim_key_and_value(text: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(ClaimError) as err:
        parse_claims(text, tmp_path / "claims.toml")
    assert str(err.value).startswith(str(tmp_path / "claims.toml")), err.value
    assert expected.replace("claims.toml", str(tmp_path / "claims.toml")) in str(err.value), err.value


# -- suites with synthetic values -------------------------------------------------------------------

Record = tuple[float, str] | dict[str, Any] | str | None


@pytest.fixture
def build(make_suite: Callable[..., Suite], fake_registry: Registry, tmp_path: Path) -> Callable[..., Any]:
    """``build(values, claims, metric=..., registry=...)``: a suite whose models (aliases of ``linear``)
    have the given per-seed records in ``metric`` (``(value, tag)``, a metric-record dict, ``"failed"``,
    ``None``: no record), its claims file, its store and leaderboard; returns (suite, store, board)."""

    def make(values: dict[str, list[Record]], claims: str, metric: str = "fake_est",
             registry: Registry | None = None, extra: str = "",
             references: dict[str, list[float]] | None = None) -> tuple[Suite, Store, tables.Leaderboard]:
        reg = registry or fake_registry
        seeds = list(range(len(next(iter(values.values())))))
        body = "".join(f"[models.{m}]\ncomponent = 'linear'\nlr = {0.01 * (i + 1)}\n" for i, m in enumerate(values))
        (tmp_path / "claims.toml").write_text(claims)
        suite = make_suite(body + f"[metrics.{metric}]\n" + extra, header=HEADER.format(seeds=seeds), registry=reg)
        store = Store(tmp_path / "results.sqlite")
        for cell in plan(suite, reg)[0]:
            rec = values[cell.model.label][cell.seed]
            store.claim(cell.run_id, cell.identity())
            if rec == "failed":
                store.finish(cell.run_id, status="failed", error="RuntimeError: boom")
                continue
            metrics = []
            if isinstance(rec, tuple):
                metrics = [{"metric": metric, "component": metric, "status": "ok", "value": rec[0],
                            "estimator": rec[1]}]
            elif isinstance(rec, dict):
                metrics = [{"metric": metric, "component": metric, "status": "ok", **rec}]
            curves = rec.pop("curves", []) if isinstance(rec, dict) else []
            store.finish(cell.run_id, status="ok", fields={"train_steps": 24, "n_params": 7, "curves": curves},
                         metrics=metrics)
        entry = next(m for m in suite.metrics if m.label == metric)
        for label, vals in (references or {}).items():
            for seed, v in enumerate(vals):
                config = {"reference": label, "metric": entry.identity(), "dataset": suite.datasets[0].identity(),
                          "seed": seed}
                ident = {"suite": suite.name, "model": label, "model_component": "", "sampler": "",
                         "dataset": "toy", "seed": seed, "config": config}
                store.put_reference(f"ref{label}{seed}", ident, {"metric": metric, "component": metric,
                                                                 "status": "ok", "value": v})
        return suite, store, tables.build(store, suite, reg)

    return make


def results(suite: Suite, store: Store, board: tables.Leaderboard, registry: Registry) -> dict[str, Any]:
    return {r.claim.id: r for r in evaluate_all(claims_for(suite, registry), board, store, registry)}


@pytest.mark.parametrize(("a", "b", "verdict"), [
    ([0.90, 0.91, 0.89], [0.50, 0.51, 0.49], REPRODUCED),
    ([0.50, 0.51, 0.49], [0.90, 0.91, 0.89], NOT_REPRODUCED),
    ([0.70, 0.95, 1.00], [0.90, 0.91, 0.89], INCONCLUSIVE),
])
def test_verdicts_follow_welch_in_the_claimed_direction(build, fake_registry, a, b, verdict) -> None:
    values = {"a": [(v, "") for v in a], "b": [(v, "") for v in b]}
    suite, store, board = build(values, claim_text())
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.verdict == verdict
    from scipy import stats

    expected = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert result.test.p_claimed == pytest.approx(expected.pvalue)
    assert result.test.t == pytest.approx(expected.statistic)
    assert result.better.row == "a" and result.better.values == a
    assert result.test_text.startswith(f"t = {expected.statistic:.3g}, df = ")
    if verdict == NOT_REPRODUCED:
        assert result.reason.startswith("a is worse (one-sided p = ")


def test_a_value_marked_unreliable_makes_the_claim_inconclusive(build, fake_registry) -> None:
    """Welch would call this reproduced, but one of a's seed values carries its metric's warning."""
    warned = {"value": 0.91, "estimator": "", "settings": {"warning": "log Z rests on 2 effective draws"}}
    values = {"a": [(0.90, ""), warned, (0.89, "")], "b": [(0.50, ""), (0.51, ""), (0.49, "")]}
    suite, store, board = build(values, claim_text())
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.test is not None and result.test.p_claimed < 0.05
    assert result.verdict == INCONCLUSIVE and "seed 1: log Z rests on 2 effective draws" in result.reason


def test_lower_is_better_flips_the_direction(build, fake_registry) -> None:
    values = {"a": [(0.10, ""), (0.11, ""), (0.09, "")], "b": [(0.5, ""), (0.52, ""), (0.49, "")]}
    suite, store, board = build(values, claim_text(extra='metric = "fake_mse"'), metric="fake_mse")
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.verdict == REPRODUCED and result.test.t > 0 and not result.higher_is_better


def test_one_seed_is_inconclusive_and_says_n_below_two(build, fake_registry) -> None:
    suite, store, board = build({"a": [(0.9, "")], "b": [(0.1, "")]}, claim_text())
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.verdict == INCONCLUSIVE and result.test is None and result.test_text == TOO_FEW


def test_deterministic_values_decide_by_their_means() -> None:
    assert welch([1.0, 1.0], [0.5, 0.5], True).p_claimed == 0.0
    assert welch([1.0, 1.0], [0.5, 0.5], False).p_opposite == 0.0
    same = welch([1.0, 1.0], [1.0, 1.0], True)
    assert same.p_claimed == 0.5 and same.p_two_sided == 1.0


def test_missing_and_failed_entries_are_not_measured_with_the_reason(build, fake_registry) -> None:
    values = {"a": ["failed", "failed"], "b": [(0.5, ""), (0.6, "")], "c": [None, None]}
    claims = claim_text() + claim_text("c_claim", better="c", worse="b")
    suite, store, board = build(values, claims)
    res = results(suite, store, board, fake_registry)
    assert res["a_beats_b"].verdict == NOT_MEASURED
    assert res["a_beats_b"].reason == "a: failed (RuntimeError: boom)"
    assert res["a_beats_b"].test_text == ""
    assert res["c_claim"].verdict == NOT_MEASURED and res["c_claim"].reason.startswith("c: missing")


def test_different_estimators_are_never_compared(build, fake_registry) -> None:
    values = {"a": [(-3.0, "Parzen"), (-3.01, "Parzen")], "b": [(-5.0, "IWAE lb"), (-5.1, "IWAE lb")]}
    suite, store, board = build(values, claim_text())
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.verdict == NOT_COMPARABLE and result.test is None
    assert result.reason == "different estimators (a: Parzen, b: IWAE lb)"


def test_a_metric_that_ranks_across_estimators_is_compared(build, fake_registry) -> None:
    values = {"a": [(0.9, "model score"), (0.91, "model score"), (0.92, "model score")],
              "b": [(0.5, "NLL IWAE"), (0.52, "NLL IWAE"), (0.51, "NLL IWAE")]}
    suite, store, board = build(values, claim_text(extra='metric = "fake_score"'), metric="fake_score")
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.verdict == REPRODUCED
    assert result.better.text == "0.9100 ± 0.0058 (model score)" and result.worse.text.endswith("(NLL IWAE)")


def test_a_detail_key_compares_per_class_values(build, fake_registry) -> None:
    def rec(c1: float) -> dict[str, Any]:  # the value (mean over classes) favours b, class 1 favours a
        return {"value": 1.0 - c1, "details": {"per_class": {"1": c1, "2": 0.0}}}

    values = {"a": [rec(0.9), rec(0.91), rec(0.92)], "b": [rec(0.5), rec(0.5), rec(0.52)]}
    claims = claim_text(extra='metric = "fake_est"\ndetail = "per_class.1"') + \
        claim_text("absent", extra='metric = "fake_est"\ndetail = "per_class.7"')
    suite, store, board = build(values, claims)
    res = results(suite, store, board, fake_registry)
    assert res["a_beats_b"].verdict == REPRODUCED and res["a_beats_b"].better.values == [0.9, 0.91, 0.92]
    assert res["a_beats_b"].quantity == "fake_est [per_class.1]"
    assert res["absent"].verdict == NOT_MEASURED
    assert "no fake_est record has detail 'per_class.7'" in res["absent"].reason


def test_a_curve_claim_averages_the_last_tenth_of_training(build, fake_registry) -> None:
    def rec(end: float) -> dict[str, Any]:
        points = [{"step": float(s), "reg": 1.0 if s < 90 else end} for s in range(0, 100, 2)]
        return {"value": 0.0, "curves": points}

    values = {"a": [rec(0.1), rec(0.11), rec(0.12)], "b": [rec(0.5), rec(0.52), rec(0.5)]}
    suite, store, board = build(values, claim_text(extra='curve = "reg"\nhigher_is_better = false'))
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.better.values == pytest.approx([0.1, 0.11, 0.12])
    assert result.verdict == REPRODUCED and result.quantity == "training curve reg"
    assert curve_value([{"step": 0.0, "x": 1.0}, {"step": 10.0, "x": 3.0}], "x") == 3.0
    assert curve_value([{"step": 0.0, "y": 1.0}], "x") is None


def test_reference_row_of_the_metric(build, fake_registry) -> None:
    values = {"a": [(0.9, ""), (0.91, ""), (0.92, "")]}
    suite, store, board = build(values, claim_text(extra='metric = "fake_ref"', worse="@reference"),
                                metric="fake_ref", references={"oracle": [0.5, 0.51, 0.52]})
    (result,) = results(suite, store, board, fake_registry).values()
    assert result.worse.row == "oracle" and result.worse.values == [0.5, 0.51, 0.52]
    assert result.verdict == REPRODUCED


# -- validation against the suite -------------------------------------------------------------------


@pytest.mark.parametrize(("claims", "expected"), [
    (claim_text().replace('dataset = "toy"', 'dataset = "tyo"'),
     "claim 'a_beats_b': dataset = 'tyo' (CLAIMS, line 5): not a data set of the suite (data sets: toy)"),
    (claim_text(extra='metric = "fake_mse"'),
     "claim 'a_beats_b': metric = 'fake_mse' (CLAIMS, line 6): not a metric label of the suite (metrics: fake_est)"),
    (claim_text(worse="bb"), "claim 'a_beats_b': worse = 'bb' (CLAIMS, line 8): no such entry; did you mean 'b'?"),
    (claim_text(worse="@reference"), "worse = '@reference' (CLAIMS, line 8): metric 'fake_est' (fake_est) has no "
                                     "reference rows"),
])
def test_claims_that_do_not_fit_the_suite_are_errors_before_anything_is_computed(
        build, fake_registry, tmp_path, claims, expected) -> None:
    with pytest.raises(ClaimError) as err:
        suite, *_ = build({"a": [(0.9, "")], "b": [(0.8, "")]}, "")
        (tmp_path / "claims.toml").write_text(claims)
        claims_for(suite, fake_registry)
    assert expected.replace("CLAIMS", str(tmp_path / "claims.toml")) in str(err.value), err.value


def test_claims_that_could_never_be_measured_are_errors_too(build, fake_registry, tmp_path) -> None:
    """A row the metric is n/a for (capabilities), or a metric the suite does not evaluate on the claim's
    data set, would only ever read "not measured": it is a mistake in the file, said before training."""
    extra = '[datasets.toy2]\ncomponent = "toy"\nn_train = 32\n[metrics.fake_est]\ndatasets = ["toy2"]\n'
    suite, *_ = build({"a": [(0.9, "")], "b": [(0.8, "")]}, "", metric="fake_ll", extra=extra)
    path = tmp_path / "claims.toml"
    for claims, expected in [
        (claim_text(extra='metric = "fake_ll"'), "claim 'a_beats_b': better = 'a' (CLAIMS, line 7): row 'a' is n/a in "
                                                 "metric 'fake_ll' (model lacks log_likelihood (required by fake_ll))"),
        (claim_text(), "claim 'a_beats_b': metric = 'fake_est' (CLAIMS, line 6): not evaluated on data set 'toy': the "
                       "suite asks for fake_est on toy2 only ([metrics.fake_est] datasets)"),
        (claim_text(extra='metric = "fake_ll"') + "[claims.a_beats_bb]\nenabled = false\n",
         "claims.a_beats_bb.enabled = false (CLAIMS, line 10): no claim 'a_beats_bb' is registered; did you mean "
         "'a_beats_b'?"),
    ]:
        path.write_text(claims)
        with pytest.raises(ClaimError) as err:
            claims_for(suite, fake_registry)
        assert expected.replace("CLAIMS", str(path)) in str(err.value), err.value


def test_a_model_label_names_its_only_row_and_must_pick_among_several(make_suite, fake_registry, tmp_path) -> None:
    body = "[models.d]\ncomponent = 'dyn_any'\n[models.a]\ncomponent = 'linear'\n[samplers.walk]\n" \
           "[samplers.other_walk]\ncomponent = 'walk'\nstep_size = 0.2\n[metrics.fake_mse]\n"
    header = HEADER.format(seeds=[0])
    (tmp_path / "claims.toml").write_text(claim_text(better="d + walk", worse="a", extra='metric = "fake_mse"'))
    suite = make_suite(body, header=header)
    assert [c.spec.better for c in claims_for(suite, fake_registry)] == ["d + walk"]
    (tmp_path / "claims.toml").write_text(claim_text(better="d", worse="a", extra='metric = "fake_mse"'))
    with pytest.raises(ClaimError, match=r"model 'd' has several rows \(d \+ walk, d \+ other_walk\); name one"):
        claims_for(suite, fake_registry)
    (tmp_path / "claims.toml").write_text(claim_text(better="d", worse="d + walk", extra='metric = "fake_mse"'))
    with pytest.raises(ClaimError, match="several rows"):
        claims_for(suite, fake_registry)


# -- plugin-registered claims -----------------------------------------------------------------------


class ClaimsPlugin:
    """Registers claims the way a third-party plugin would."""

    def __init__(self, *specs: Any) -> None:
        self.specs = specs

    @hookimpl
    def benchbed_register_claims(self, register: Callable[[ClaimSpec], None]) -> None:
        for spec in self.specs:
            register(spec)


def spec(cid: str, better: str = "a", worse: str = "b", metric: str = "fake_est") -> ClaimSpec:
    return ClaimSpec(id=cid, paper="Roe 2021", statement=f"{better} beats {worse}", dataset="toy", metric=metric,
                     better=better, worse=worse)


def plugin_registry(helpers: Any, *specs: Any, strict: bool = True) -> Registry:
    return load_plugins(extra=[("fake", helpers.FakePlugin()), ("claimer", ClaimsPlugin(*specs))],
                        entry_points_enabled=False, strict=strict).registry


def test_plugin_claims_apply_where_the_suite_has_their_entries(build, helpers) -> None:
    registry = plugin_registry(helpers, spec("fits"), spec("other_model", better="zz"),
                               spec("other_metric", metric="fake_mse"), spec("overridden"), spec("dropped"))
    assert list(registry.claims) == ["fits", "other_model", "other_metric", "overridden", "dropped"]
    assert registry.claims["fits"].provenance.plugin == "claimer"
    file_claims = claim_text("overridden", better="b", worse="a") + "[claims.dropped]\nenabled = false\n"
    values = {"a": [(0.9, ""), (0.91, ""), (0.92, "")], "b": [(0.5, ""), (0.5, ""), (0.52, "")]}
    suite, store, board = build(values, file_claims, registry=registry)
    claims = claims_for(suite, registry)
    assert [(c.spec.id, c.source) for c in claims] == [("fits", "plugin claimer"), ("overridden", "claims.toml")]
    res = results(suite, store, board, registry)
    assert res["fits"].verdict == REPRODUCED and res["overridden"].verdict == NOT_REPRODUCED


def test_plugin_claim_errors_name_the_plugin(helpers) -> None:
    with pytest.raises(PluginError, match="duplicate claim id 'x': registered by plugin 'claimer'"):
        plugin_registry(helpers, spec("x"), spec("x"))
    with pytest.raises(PluginError, match="benchbed_register_claims got str, expected ClaimSpec"):
        plugin_registry(helpers, "not a spec")
    with pytest.warns(UserWarning, match="failed in benchbed_register_claims"):
        loaded = load_plugins(extra=[("fake", helpers.FakePlugin()), ("claimer", ClaimsPlugin(spec("ok"), 3))],
                              entry_points_enabled=False, strict=False)
    assert "claimer" in loaded.failures and not loaded.registry.claims
    ok = load_plugins(extra=[("fake", helpers.FakePlugin()), ("claimer", ClaimsPlugin(spec("ok")))],
                      entry_points_enabled=False, strict=True)
    assert next(p for p in ok.plugins if p.name == "claimer").components == {"claim": ["ok"]}


# -- outputs ----------------------------------------------------------------------------------------


@pytest.fixture
def evaluated(build, fake_registry) -> tuple[Suite, Store, tables.Leaderboard, list[Any]]:
    values = {"a": [(0.9, ""), (0.91, ""), (0.92, "")], "b": [(0.5, ""), (0.5, ""), (0.52, "")],
              "c": ["failed", "failed", "failed"]}
    claims = claim_text() + claim_text("c_vs_b", better="c").replace("a beats b", "c | beats b")
    suite, store, board = build(values, claims)
    return suite, store, board, evaluate_all(claims_for(suite, fake_registry), board, store, fake_registry)


def test_markdown_section_one_row_per_claim(evaluated) -> None:
    *_, res = evaluated
    md = to_markdown(res)
    lines = md.splitlines()
    assert lines[0] == "### Claims"
    assert "| claim | paper | data set | compared | values | test | verdict |" in lines
    row = next(line for line in lines if line.startswith("| `a_beats_b`"))
    assert row.startswith("| `a_beats_b`: a beats b | Doe et al. 2020 | toy | a > b: fake_est ↑ | a: 0.9100 ± 0.0058; "
                          "b: 0.5067 ± 0.0067 | t = ")
    assert row.endswith(" | **reproduced** |")
    c_row = next(line for line in lines if line.startswith("| `c_vs_b`"))
    assert "c \\| beats b" in c_row and "c: —" in c_row
    assert c_row.endswith("| **not measured**: c: failed (RuntimeError: boom) |")
    assert to_markdown([]) == ""


def test_a_finding_is_published_beside_the_verdict_and_never_decides_it(build, fake_registry) -> None:
    finding = 'finding = """obs noise\nsets a floor: [evidence](docs/x.md) | ok"""\nmetric = "fake_est"'
    values = {"a": [(0.9, ""), (0.91, ""), (0.92, "")], "b": [(0.5, ""), (0.5, ""), (0.52, "")]}
    claims = claim_text(extra=finding) + claim_text("plain")
    suite, store, board = build(values, claims)
    res = evaluate_all(claims_for(suite, fake_registry), board, store, fake_registry)
    assert [r.verdict for r in res] == [REPRODUCED, REPRODUCED]
    row = next(line for line in to_markdown(res).splitlines() if line.startswith("| `a_beats_b`"))
    assert row.endswith("| **reproduced**. *Finding:* obs noise sets a floor: [evidence](docs/x.md) \\| ok |")
    plain = next(line for line in to_markdown(res).splitlines() if line.startswith("| `plain`"))
    assert plain.endswith("| **reproduced** |")
    rows = list(csv.DictReader(io.StringIO(to_csv(res))))
    assert rows[0]["finding"] == "obs noise\nsets a floor: [evidence](docs/x.md) | ok" and rows[1]["finding"] == ""
    assert to_records(res)[0]["finding"].startswith("obs noise")
    cell = to_html(res)
    assert '<em>Finding:</em> obs noise sets a floor: <a href="docs/x.md">evidence</a>' in cell


def test_a_finding_must_be_text() -> None:
    with pytest.raises(ClaimError, match="finding = 3"):
        parse_claims(claim_text(extra='metric = "fake_est"\nfinding = 3'))


def test_csv_has_one_line_per_claim(evaluated) -> None:
    *_, res = evaluated
    rows = list(csv.DictReader(io.StringIO(to_csv(res))))
    assert list(rows[0]) == CSV_HEADER
    first = rows[0]
    assert first["id"] == "a_beats_b" and first["verdict"] == REPRODUCED and first["better_values"] == "0.9;0.91;0.92"
    assert float(first["better_mean"]) == pytest.approx(0.91) and first["better_n"] == "3"
    assert 0 < float(first["p_one_sided"]) < 0.05 and first["higher_is_better"] == "1"
    assert rows[1]["verdict"] == NOT_MEASURED and rows[1]["t"] == "" and rows[1]["better_mean"] == ""


def test_json_and_files_written_by_the_leaderboard(evaluated, fake_registry, tmp_path) -> None:
    suite, store, board, res = evaluated
    doc = json.loads(leaderboard.to_json(store, board, res))
    first = doc["claims"][0]
    assert first["id"] == "a_beats_b" and first["verdict"] == REPRODUCED and first["better"]["values"] == [0.9, 0.91,
                                                                                                           0.92]
    assert first["test"]["p_one_sided"] < 0.05 and doc["claims_test"]["one_sided"] is True
    assert doc["claims"][1]["test"] is None and doc["claims"][1]["better"]["mean"] is None
    assert "claims" not in json.loads(leaderboard.to_json(store, board))
    out = tmp_path / "out"
    paths = leaderboard.write(store, suite, fake_registry, out, formats=("md", "json", "html"))
    assert out / CLAIMS_CSV in paths
    assert "### Claims" in (out / "README.md").read_text()
    assert json.loads((out / "results.json").read_text())["claims"][0]["id"] == "a_beats_b"
    page = (out / "index.html").read_text()
    assert ">Claims</h2>" in page and "<code>a_beats_b</code>" in page
    (tmp_path / "claims.toml").write_text("")  # no claims any more: the stale claims.csv goes
    leaderboard.write(store, suite, fake_registry, out, formats=("md",))
    assert not (out / CLAIMS_CSV).exists() and "### Claims" not in (out / "README.md").read_text()


def test_the_committed_claims_files_fit_their_suites() -> None:
    root = Path(__file__).resolve().parents[2] / "leaderboards"
    import tomllib

    from benchbed.plugins import load_registry
    from benchbed.suite import load_suite

    registry = load_registry()
    for name in ("standard", "quick"):
        written = tomllib.loads((root / name / "claims.toml").read_text(encoding="utf-8"))["claims"]
        claims = claims_for(load_suite(root / name / "suite.toml", registry), registry)
        # every claim of the file applies (none dropped for a missing entry), and the file's own replaces
        # the plugin-registered claim of the same id
        assert sorted(c.spec.id for c in claims) == sorted(written) and len(written) >= 10
        assert all(c.source == "claims.toml" for c in claims)


def test_a_filtered_suite_keeps_the_claims_of_its_entries_and_the_files_errors(tmp_path: Path) -> None:
    """``benchbed run quick --models vae,lebm`` must not fail on claims about other entries (they are valid for
    the suite as written), but a claim that fits no version of the suite is still an error."""
    import shutil

    from benchbed.overrides import Selection
    from benchbed.plugins import load_registry
    from benchbed.suite import load_suite

    registry = load_registry()
    quick = Path(__file__).resolve().parents[2] / "leaderboards" / "quick"
    folder = tmp_path / "quick"
    folder.mkdir()
    for name in ("suite.toml", "claims.toml"):
        shutil.copy(quick / name, folder / name)
    partial = load_suite(folder / "suite.toml", registry, selection=Selection(models=("vae", "lebm")))
    kept = claims_for(partial, registry)
    assert kept and {c.spec.better for c in kept} | {c.spec.worse for c in kept} <= {"vae", "lebm + langevin"}
    text = (folder / "claims.toml").read_text(encoding="utf-8")
    (folder / "claims.toml").write_text(text.replace('worse = "gmmn"', 'worse = "gmnm"', 1), encoding="utf-8")
    with pytest.raises(ClaimError, match="gmnm"):
        claims_for(load_suite(folder / "suite.toml", registry, selection=Selection(models=("vae",))), registry)


def test_csv_fields_that_a_spreadsheet_would_run_are_defused() -> None:
    """A label such as ``=HYPERLINK(...)`` (a suite's entry names are free text) gets a leading apostrophe in
    every CSV benchbed writes; numbers, negative ones included, are left as they are."""
    from benchbed.claims_table import _csv_field

    assert _csv_field('=HYPERLINK("http://x","y")') == '"\'=HYPERLINK(""http://x"",""y"")"'
    assert _csv_field("@SUM(A1)") == "'@SUM(A1)" and _csv_field("+1+cmd") == "'+1+cmd"
    assert _csv_field("-85.3") == "-85.3" and _csv_field("-inf") == "-inf" and _csv_field(-2) == "-2"
    assert _csv_field("-8.12;-5.49") == "-8.12;-5.49"  # a claim side's per-seed values
    assert _csv_field("vae + langevin") == "vae + langevin" and _csv_field(None) == ""
