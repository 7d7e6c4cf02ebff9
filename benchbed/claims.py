"""Published claims as data, checked against a suite's results (``docs/results.md#claims``).

A claim says that one entry of a suite beats another on one quantity of one data set, as a paper
reports it ("LEBM's held-out-digit AUPRC is higher than the VAE's", Pang et al. 2020).  Claims come
from two places, merged by id:

* plugins, through the ``benchbed_register_claims`` hook (:class:`benchbed.specs.ClaimSpec`): such a
  claim applies to every suite that has its data set, its metric and both entries, and is silently
  left out of the others;
* the suite's own claims file, ``claims.toml`` beside ``suite.toml`` (``<stem>.claims.toml`` beside
  any other suite file): one ``[claims.<id>]`` table per claim with the keys of
  :data:`benchbed.specs.CLAIM_KEYS`.  It adds claims, replaces a plugin's claim of the same id, and
  drops one with ``enabled = false``.  Every claim of the file must apply to the suite: a data set,
  metric or entry it does not have is an error naming the file, the claim id, the key and the value,
  raised before anything is trained or tabulated.

Evaluation (:func:`evaluate`) reads the per-seed values that :mod:`benchbed.tables` aggregates into
the leaderboard's cells (or, for a ``detail`` key or a training ``curve``, the same runs' records),
and tests the claimed direction with Welch's unequal-variance t-test, one-sided at
:data:`benchbed.stats.ALPHA`.  The verdict is one of :data:`VERDICTS`:

* ``reproduced``: the one-sided test in the claimed direction rejects equal means;
* ``not reproduced``: the one-sided test in the opposite direction rejects (the claimed-better entry
  is significantly worse);
* ``inconclusive at this budget``: neither rejects, or a side has fewer than two seed values;
* ``not comparable``: the values carry different estimator tags (and the metric does not rank
  across them, :attr:`benchbed.specs.MetricSpec.ranks_across_estimators`), e.g. a Parzen estimate
  against an IWAE bound;
* ``not measured``: an entry has no value (missing, failed, diverged, ``n/a``), with the reason.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from benchbed.errors import PluginError, SuiteError
from benchbed.registry import Registry
from benchbed.specs import CLAIM_KEYS, ClaimSpec
from benchbed.stats import ALPHA, format_with_error, summarize
from benchbed.store import Store
from benchbed.suite import Suite, _Locator
from benchbed.tables import Column, DatasetTable, Leaderboard, Row, metric_columns

#: The claims file beside ``suite.toml``.
CLAIMS_FILE = "claims.toml"
#: An entry naming the claim metric's model-free reference row on the data set.
REFERENCE = "@reference"
#: A curve claim compares, per seed, the mean of the points recorded in this last fraction of training.
CURVE_TAIL = 0.1

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive at this budget"
NOT_COMPARABLE = "not comparable"
NOT_MEASURED = "not measured"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_COMPARABLE, NOT_MEASURED)
TEST_NAME = "Welch's t-test, one-sided in the claimed direction"
#: The test text where a side has fewer than two seed values.
TOO_FEW = "inconclusive (n < 2)"


class ClaimError(SuiteError):
    """A claims file is malformed or names something the suite does not have."""


@dataclass(frozen=True)
class SuiteClaim:
    """A claim that applies to a suite, and where it comes from (the file, or ``plugin NAME``)."""

    spec: ClaimSpec
    source: str


# -- the claims file ----------------------------------------------------------------------------


def claims_path(suite: Suite) -> Path | None:
    """The suite's claims file: ``claims.toml`` beside ``suite.toml``, ``<stem>.claims.toml`` beside any
    other suite file; ``None`` for a suite without a file."""
    if suite.path is None:
        return None
    if suite.path.name == "suite.toml":
        return suite.path.parent / CLAIMS_FILE
    return suite.path.parent / f"{suite.path.stem}.claims.toml"


@dataclass(frozen=True)
class ClaimsFile:
    """A parsed claims file: its claims in file order, and the ids it disables (``enabled = false``)."""

    claims: tuple[ClaimSpec, ...]
    disabled: tuple[str, ...] = ()


def parse_claims(text: str, path: Path | None = None) -> ClaimsFile:
    """Parse claims TOML: a ``[claims.<id>]`` table per claim, keys :data:`CLAIM_KEYS` (and ``enabled``).

    Raises:
        ClaimError: not TOML, an unknown key, a wrong type or value; the message names the file, the
            claim id, the key and the value (with the line where it can be found).
    """
    where = str(path) if path else "<claims>"
    text = text.removeprefix("\ufeff")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ClaimError(f"{where}: invalid TOML: {exc}") from exc
    loc = _Locator(text, path)
    if extra := sorted(set(raw) - {"claims"}):
        raise ClaimError(f"{where}: unknown top-level key {extra[0]!r}{loc('', extra[0])}; a claims file holds "
                         "only [claims.<id>] tables")
    table = raw.get("claims", {})
    if not isinstance(table, dict):
        raise ClaimError(f"{where}: 'claims' must be a table of [claims.<id>] tables, got {table!r}")
    claims, disabled = [], []
    allowed = {*CLAIM_KEYS, "enabled"}
    for cid, body in table.items():
        section = f"claims.{cid}"
        if not isinstance(body, dict):
            raise ClaimError(f"{where}: claim {cid!r}{loc(section)} must be a table, got {body!r}")
        if unknown := sorted(set(body) - allowed):
            key = unknown[0]
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ClaimError(f"{where}: claim {cid!r}: unknown key {key!r} = {body[key]!r}{loc(section, key)}{hint} "
                             f"(keys: {', '.join(sorted(allowed))})")
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ClaimError(f"{where}: claim {cid!r}: enabled = {enabled!r}{loc(section, 'enabled')} must be "
                             "true or false")
        if not enabled:
            disabled.append(cid)
            continue
        given = {k: v for k, v in body.items() if k != "enabled"}
        required = [f.name for f in fields(ClaimSpec) if f.name in ("paper", "statement", "dataset", "better",
                                                                     "worse")]
        if missing := [k for k in required if k not in given]:
            raise ClaimError(f"{where}: claim {cid!r}{loc(section)} lacks key {missing[0]!r} (required: "
                             f"{', '.join(required)})")
        try:
            claims.append(ClaimSpec(id=cid, **given))
        except PluginError as exc:
            key = next((k for k in given if f" {k} = " in str(exc) or f"({k} = " in str(exc)), None)
            raise ClaimError(f"{where}: {exc}{loc(section, key) if key else loc(section)}") from None
    return ClaimsFile(tuple(claims), tuple(disabled))


def load_claims_file(path: Path) -> ClaimsFile:
    """Read and parse a claims file (:func:`parse_claims`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClaimError(f"cannot read claims file {path}: {exc}") from exc
    return parse_claims(text, path)


# -- which claims apply to a suite --------------------------------------------------------------


def suite_rows(suite: Suite, registry: Registry) -> dict[str, dict[str, str]]:
    """``data set label -> {row label: model label}``: the model rows the suite's tables will have."""
    from benchbed.grid import plan

    rows: dict[str, dict[str, str]] = {d.label: {} for d in suite.datasets}
    for cell in plan(suite, registry)[0]:
        label = cell.model.label + (f" + {cell.sampler_label}" if cell.sampler_label else "")
        rows[cell.dataset.label][label] = cell.model.label
    return rows


def resolve_entry(name: str, rows: Mapping[str, str]) -> tuple[str, str]:
    """``(row label, "")`` for an entry of a claim, or ``("", problem)``.

    ``rows``: ``row label -> model label`` of one data set.  An entry is a row label, a model label that
    has exactly one row, or :data:`REFERENCE` (returned as is).
    """
    if name == REFERENCE or name in rows:
        return name, ""
    matches = [r for r, model in rows.items() if model == name]
    if len(matches) == 1:
        return matches[0], ""
    if matches:
        return "", f"model {name!r} has several rows ({', '.join(matches)}); name one of them"
    close = difflib.get_close_matches(name, list(rows), n=2, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return "", f"no such entry{hint} (rows: {', '.join(rows) or 'none'})"


def claim_problem(claim: ClaimSpec, suite: Suite, registry: Registry,
                  rows: Mapping[str, Mapping[str, str]]) -> tuple[str, str] | None:
    """Why ``claim`` does not apply to ``suite``, as ``(key, problem)``; ``None`` when it applies."""
    if claim.dataset not in rows:
        return "dataset", f"not a data set of the suite (data sets: {', '.join(rows)})"
    metrics = {m.label: m for m in suite.metrics}
    if claim.metric and claim.metric not in metrics:
        return "metric", f"not a metric label of the suite (metrics: {', '.join(metrics)})"
    for key in ("better", "worse"):
        name = getattr(claim, key)
        if name == REFERENCE:
            if claim.curve:
                return key, "a reference row has no training curve"
            entry = metrics[claim.metric]
            metric = registry.metric(entry.component).factory(**entry.params)  # constructing does no work
            if not callable(getattr(metric, "references", None)):
                return key, f"metric {claim.metric!r} ({entry.component}) has no reference rows"
            continue
        if problem := resolve_entry(name, rows[claim.dataset])[1]:
            return key, f"{problem} on data set {claim.dataset!r}"
    better, worse = (resolve_entry(getattr(claim, k), rows[claim.dataset])[0] for k in ("better", "worse"))
    if better == worse:
        return "worse", f"names the same row as better ({better!r})"
    if claim.metric:  # knowable now: a claim whose values can never exist would only read "not measured"
        from benchbed.grid import capability_incompatibility, declared_capabilities

        entry = metrics[claim.metric]
        if why := entry.not_asked(claim.dataset):
            return "metric", f"not evaluated on data set {claim.dataset!r}: {why}"
        models = {m.label: m for m in suite.models}
        for key, row in (("better", better), ("worse", worse)):
            if row == REFERENCE:
                continue
            caps = declared_capabilities(registry, models[rows[claim.dataset][row]])
            if caps is not None and (why := capability_incompatibility(registry.metric(entry.component), caps)):
                return key, f"row {row!r} is n/a in metric {claim.metric!r} ({why})"
    return None


def claims_for(suite: Suite, registry: Registry) -> list[SuiteClaim]:
    """The claims that apply to ``suite``: the plugins' claims that fit it, then the file's, by id.

    A file claim with a plugin claim's id replaces it in place; ``enabled = false`` drops it.

    A suite filtered by a selection (``--models`` ...) is checked as the file defines it, and gets only the
    claims whose entries it kept.

    Raises:
        ClaimError: the claims file is malformed or one of its claims names a data set, metric or entry
            the suite does not have (file, claim id, key and value in the message).
    """
    partial = bool(suite.selection) and suite.path is not None
    if partial:
        from benchbed.suite import load_suite

        assert suite.path is not None
        claims_for(load_suite(suite.path, registry, overrides=suite.overrides), registry)  # the file's errors
    rows = suite_rows(suite, registry)
    out: dict[str, SuiteClaim] = {}
    for cid, registered in registry.claims.items():
        if claim_problem(registered.spec, suite, registry, rows) is None:
            out[cid] = SuiteClaim(registered.spec, f"plugin {registered.provenance.plugin}")
    path = claims_path(suite)
    if path is None or not path.is_file():
        return list(out.values())
    parsed = load_claims_file(path)
    text = path.read_text(encoding="utf-8")
    loc = _Locator(text, path)
    known = {*registry.claims, *(c.id for c in parsed.claims)}
    for cid in parsed.disabled:
        if cid not in known and (close := difflib.get_close_matches(cid, sorted(known), n=2, cutoff=0.8)):
            # most likely a misspelt id, which would leave the claim it meant to disable enabled
            raise ClaimError(f"{path}: claims.{cid}.enabled = false{loc(f'claims.{cid}', 'enabled')}: no claim "
                             f"{cid!r} is registered; did you mean {', '.join(map(repr, close))}?")
        out.pop(cid, None)
    for claim in parsed.claims:
        if found := claim_problem(claim, suite, registry, rows):
            if partial:  # valid for the whole suite (checked above); outside this selection
                continue
            key, problem = found
            raise ClaimError(f"{path}: claim {claim.id!r}: {key} = {getattr(claim, key)!r}"
                             f"{loc(f'claims.{claim.id}', key)}: {problem}")
        out[claim.id] = SuiteClaim(claim, path.name)
    return list(out.values())


# -- evaluation ---------------------------------------------------------------------------------


@dataclass
class Side:
    """One compared entry: its per-seed values (ordered by seed) and their estimator tags.

    ``reason`` says why it has no value (empty when it has); ``n`` counts the row's runs; ``warning``
    is the table's footnote when some seed's value is marked unreliable by its metric.
    """

    entry: str
    row: str = ""
    values: list[float] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    n: int = 0
    reason: str = ""
    warning: str = ""

    @property
    def mean(self) -> float:
        return summarize(self.values).mean

    @property
    def se(self) -> float:
        return summarize(self.values).se

    @property
    def text(self) -> str:
        """``mean ± SE`` (:func:`benchbed.stats.format_with_error`), the tag, ``(k/n seeds)`` when partial."""
        if not self.values:
            return ""
        s = summarize(self.values)
        parts = [format_with_error(s.mean, s.se)]
        if tag := " / ".join(sorted(t for t in self.tags if t)):
            parts.append(f"({tag})")
        if self.n and len(self.values) < self.n:
            parts.append(f"({len(self.values)}/{self.n} seeds)")
        return " ".join(parts)


@dataclass(frozen=True)
class Welch:
    """Welch's t-test of ``better`` against ``worse``: ``t`` signed so that positive is the claimed
    direction, its degrees of freedom, and p-values one-sided each way and two-sided."""

    t: float
    df: float
    p_claimed: float
    p_opposite: float
    p_two_sided: float


def welch(better: Sequence[float], worse: Sequence[float], higher_is_better: bool) -> Welch | None:
    """Welch's test in the claimed direction; ``None`` when a side has fewer than two values.

    Both sides without spread: the difference of the means decides (p = 0 for the direction it goes,
    1 for the other; equal means: 0.5 each way and 1 two-sided).
    """
    if len(better) < 2 or len(worse) < 2:
        return None
    sign = 1.0 if higher_is_better else -1.0
    a, b = summarize(better), summarize(worse)
    if a.std == 0 and b.std == 0:
        diff = sign * (a.mean - b.mean)
        if diff == 0:
            return Welch(0.0, math.nan, 0.5, 0.5, 1.0)
        return Welch(math.copysign(math.inf, diff), math.nan, 0.0 if diff > 0 else 1.0, 1.0 if diff > 0 else 0.0, 0.0)
    from scipy import stats

    two = stats.ttest_ind(list(better), list(worse), equal_var=False)
    claimed = stats.ttest_ind(list(better), list(worse), equal_var=False,
                              alternative="greater" if higher_is_better else "less")
    opposite = stats.ttest_ind(list(better), list(worse), equal_var=False,
                               alternative="less" if higher_is_better else "greater")
    return Welch(sign * float(two.statistic), float(two.df), float(claimed.pvalue), float(opposite.pvalue),
                 float(two.pvalue))


@dataclass
class ClaimResult:
    """A claim, its two sides as measured, the test and the verdict (one of :data:`VERDICTS`).

    ``quantity`` names what was compared (the metric column's title, ``[detail]``, or the curve key);
    ``reason`` explains a verdict other than reproduced or inconclusive-by-test.
    """

    claim: ClaimSpec
    source: str
    quantity: str
    higher_is_better: bool
    better: Side
    worse: Side
    test: Welch | None = None
    verdict: str = NOT_MEASURED
    reason: str = ""

    @property
    def test_text(self) -> str:
        """``t = …, df = …, p = …`` (p one-sided in the claimed direction), or why there is no test."""
        if self.verdict in (NOT_MEASURED, NOT_COMPARABLE):
            return ""
        if self.test is None:
            return TOO_FEW
        t = "∞" if math.isinf(self.test.t) and self.test.t > 0 else "-∞" if math.isinf(self.test.t) \
            else f"{self.test.t:.3g}"
        df = "" if math.isnan(self.test.df) else f", df = {self.test.df:.3g}"
        return f"t = {t}{df}, p = {format_p(self.test.p_claimed)}"

    @property
    def verdict_text(self) -> str:
        """The verdict with its reason, e.g. ``not measured: vae: n/a (model lacks classify)``."""
        return f"{self.verdict}: {self.reason}" if self.reason else self.verdict


def format_p(p: float) -> str:
    """A p-value with two significant digits (``< 0.0001`` below that)."""
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def _table(board: Leaderboard, dataset: str) -> DatasetTable | None:
    return next((t for t in board.tables if t.dataset == dataset), None)


def _row(table: DatasetTable, claim: ClaimSpec, name: str, rows: Mapping[str, str]) -> tuple[Row | None, str]:
    """The table row an entry names, or ``(None, reason)``."""
    if name == REFERENCE:
        refs = [r for r in table.rows if r.kind == "reference" and (c := r.cells.get(claim.metric))
                and c.status == "ok"]
        if len(refs) == 1:
            return refs[0], ""
        if refs:
            return None, f"several reference rows ({', '.join(r.label for r in refs)})"
        return None, f"no reference row of {claim.metric} on {claim.dataset}"
    label, problem = resolve_entry(name, rows)
    if problem:
        return None, problem
    row = next((r for r in table.rows if r.label == label), None)
    return (row, "") if row is not None else (None, f"no run of {label} on {claim.dataset} in the store")


def _dig(details: Any, key: str) -> float | None:
    for part in key.split("."):
        if not isinstance(details, Mapping) or part not in details:
            return None
        details = details[part]
    if isinstance(details, bool) or not isinstance(details, int | float) or not math.isfinite(float(details)):
        return None
    return float(details)


def curve_value(points: Sequence[Mapping[str, float]], key: str) -> float | None:
    """Mean of ``key`` over the points recorded in the last :data:`CURVE_TAIL` of training, or ``None``."""
    have = [p for p in points if key in p and math.isfinite(float(p[key]))]
    if not have:
        return None
    last = max(float(p.get("step", 0.0)) for p in points)
    tail = [float(p[key]) for p in have if float(p.get("step", 0.0)) >= (1.0 - CURVE_TAIL) * last]
    return math.fsum(tail) / len(tail) if tail else None


def _side(store: Store, table: DatasetTable | None, claim: ClaimSpec, name: str, rows: Mapping[str, str],
          omitted: Mapping[str, str]) -> Side:
    """What one entry measured: the cell's seed values, a detail of its records, or its curves."""
    side = Side(name)
    if table is None:
        side.reason = f"no finished run on {claim.dataset}"
        return side
    row, side.reason = _row(table, claim, name, rows)
    if row is None:
        return side
    side.row, side.n = row.label, len(row.run_ids)
    if claim.curve:
        for run in filter(None, map(store.run, row.ok_run_ids)):
            if (v := curve_value(run.get("curves") or [], claim.curve)) is not None:
                side.values.append(v)
        if not side.values:
            side.reason = f"{row.label}: no training curve records {claim.curve!r}" if row.ok_run_ids \
                else f"{row.label}: no run finished"
        return side
    cell = row.cells.get(claim.metric)
    if cell is None:
        side.reason = f"{claim.metric} n/a for every model on {claim.dataset}" + \
            (f" ({omitted[claim.metric]})" if claim.metric in omitted else "")
        return side
    if cell.status != "ok":
        side.reason = f"{row.label}: {cell.status or 'no value'}" + (f" ({cell.reasons[0]})" if cell.reasons else "")
        return side
    if not claim.detail:
        side.values = list(cell.values)
        side.tags = set(cell.estimator.split(" / ")) if cell.estimator else {""}
        if cell.warning:
            side.warning = f"{row.label}: {cell.warning}"
        return side
    for run in filter(None, map(store.run, row.ok_run_ids)):
        record = next((m for m in run["metrics"] if m["metric"] == claim.metric and m["status"] == "ok"), None)
        if record is not None and (v := _dig(record.get("details"), claim.detail)) is not None:
            side.values.append(v)
            side.tags.add(record.get("estimator") or "")
    if not side.values:
        side.reason = f"{row.label}: no {claim.metric} record has detail {claim.detail!r}"
    return side


def evaluate(claim: SuiteClaim, board: Leaderboard, store: Store, registry: Registry,
             rows: Mapping[str, Mapping[str, str]] | None = None) -> ClaimResult:
    """Measure and test one claim on the suite's leaderboard ``board`` (built from ``store``)."""
    spec = claim.spec
    rows = suite_rows(board.suite, registry) if rows is None else rows
    column: Column | None = next((c for c in metric_columns(board.suite, registry) if c.key == spec.metric), None)
    if spec.curve:
        quantity, higher, ranks_across = f"training curve {spec.curve}", bool(spec.higher_is_better), True
    else:
        assert column is not None and column.higher_is_better is not None, "claims_for checked the metric"
        quantity, higher, ranks_across = column.title, column.higher_is_better, column.ranks_across
        if spec.detail:
            quantity += f" [{spec.detail}]"
    table = _table(board, spec.dataset)
    omitted = {c.key: why for c, why in table.omitted} if table is not None else {}
    data_rows = rows.get(spec.dataset, {})
    better = _side(store, table, spec, spec.better, data_rows, omitted)
    worse = _side(store, table, spec, spec.worse, data_rows, omitted)
    result = ClaimResult(spec, claim.source, quantity, higher, better, worse)
    if reasons := [s.reason for s in (better, worse) if s.reason]:
        result.verdict, result.reason = NOT_MEASURED, "; ".join(reasons)
        return result
    if not ranks_across and len(better.tags | worse.tags) > 1:
        shown = [f"{s.row}: {' / '.join(sorted(s.tags)) or 'untagged'}" for s in (better, worse)]
        result.verdict = NOT_COMPARABLE
        result.reason = "different estimators (" + ", ".join(shown) + ")"
        return result
    result.test = welch(better.values, worse.values, higher)
    if result.test is None:
        result.verdict = INCONCLUSIVE
        result.reason = "fewer than 2 seed values on a side"
    elif result.test.p_claimed < ALPHA:
        result.verdict = REPRODUCED
    elif result.test.p_opposite < ALPHA or (result.test.t <= 0 and result.test.p_two_sided < ALPHA):
        result.verdict = NOT_REPRODUCED
        result.reason = f"{better.row} is worse (one-sided p = {format_p(result.test.p_opposite)})"
    else:
        result.verdict = INCONCLUSIVE
    if warnings := [s.warning for s in (better, worse) if s.warning]:
        # A value its own metric marks unreliable (e.g. log Z from a handful of effective draws) can
        # decide nothing, whichever way the test went.
        result.verdict, result.reason = INCONCLUSIVE, "; ".join(warnings)
    return result


def evaluate_all(claims: Sequence[SuiteClaim], board: Leaderboard, store: Store,
                 registry: Registry) -> list[ClaimResult]:
    """Every claim's result, in the order given."""
    rows = suite_rows(board.suite, registry) if claims else {}
    return [evaluate(c, board, store, registry, rows) for c in claims]
