"""The claims table of a published leaderboard: Markdown (README), ``claims.csv``, JSON and HTML.

One row per claim (:class:`benchbed.claims.ClaimResult`): the claim and its paper, the data set and
the compared entries with the direction, each entry's value as mean ± standard error over seeds,
Welch's test in the claimed direction, and the verdict with its reason.  Every format says the same
thing; how to read it is :data:`LEGEND` (``docs/results.md#claims``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from benchbed.claims import (
    CLAIMS_FILE,
    CURVE_TAIL,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_MEASURED,
    NOT_REPRODUCED,
    REPRODUCED,
    TEST_NAME,
    TOO_FEW,
    ClaimResult,
)
from benchbed.formats import md_cell
from benchbed.stats import ALPHA

CLAIMS_CSV = "claims.csv"

LEGEND = (
    f"Claims of the papers that this suite's tables can test (from `{CLAIMS_FILE}` beside the suite file, "
    "and from plugins). Values: mean ± standard error over seeds of each compared entry. Test: "
    f"{TEST_NAME} over the seed values, α = {ALPHA} (t positive in the claimed direction; p one-sided in "
    f"that direction); `{TOO_FEW}` where an entry has fewer than two seeds. Verdicts: **{REPRODUCED}** "
    f"(significant in the claimed direction), **{NOT_REPRODUCED}** (significant in the opposite direction), "
    f"**{INCONCLUSIVE}** (no significant difference at this suite's seeds and steps, or a compared value "
    f"that its metric marks unreliable), **{NOT_COMPARABLE}** "
    "(values of different estimators, which are never ranked against each other), "
    f"**{NOT_MEASURED}** (an entry has no value; the reason follows). A training-curve quantity is, per "
    f"seed, the mean of the points recorded in the last {CURVE_TAIL:.0%} of training (on training batches)."
)


def compared(result: ClaimResult) -> str:
    """``better > worse`` (``<`` where lower is better) on the data set, with the quantity and its arrow."""
    op = ">" if result.higher_is_better else "<"
    arrow = "↑" if result.higher_is_better else "↓"
    return f"{result.better.row or result.claim.better} {op} {result.worse.row or result.claim.worse}: " \
           f"{result.quantity} {arrow}"


def values_text(result: ClaimResult) -> str:
    """Each side's ``entry: mean ± SE (tag)``, or its reason for having none."""
    parts = []
    for side in (result.better, result.worse):
        parts.append(f"{side.row or side.entry}: {side.text or '—'}")
    return "; ".join(parts)


def _finding(result: ClaimResult) -> str:
    """The claim's ``finding`` on one line (Markdown; empty when it has none)."""
    return " ".join(result.claim.finding.split())


def to_markdown(results: Sequence[ClaimResult]) -> str:
    """The README's ``Claims`` section (empty text when there are no claims)."""
    if not results:
        return ""
    lines = ["### Claims", "", LEGEND, "",
             "| claim | paper | data set | compared | values | test | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        claim = f"`{r.claim.id}`: {r.claim.statement}"
        verdict = f"**{r.verdict}**" + (f": {r.reason}" if r.reason else "")
        if finding := _finding(r):
            verdict += f". *Finding:* {finding}"
        lines.append("| " + " | ".join(md_cell(x) for x in (claim, r.claim.paper, r.claim.dataset, compared(r),
                                                           values_text(r), r.test_text, verdict)) + " |")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _csv_field(value: Any) -> str:
    """One CSV field: quoted when needed; text that a spreadsheet would run as a formula (a suite label
    such as ``=HYPERLINK(...)``: it starts with =, +, -, @ or a tab and is not a number) gets a leading
    apostrophe, the usual guard against CSV formula injection."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t") and not _is_number(text):
        text = "'" + text
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _is_number(text: str) -> bool:
    """A number, or numbers joined by ``;`` (a claim side's per-seed values)."""
    try:
        for part in text.split(";"):
            float(part)
    except ValueError:
        return False
    return True


CSV_HEADER = ["id", "paper", "statement", "dataset", "quantity", "metric", "detail", "curve", "higher_is_better",
              "better", "better_mean", "better_se", "better_n", "better_values", "worse", "worse_mean", "worse_se",
              "worse_n", "worse_values", "t", "df", "p_one_sided", "p_two_sided", "verdict", "reason",
              "finding", "source"]


def to_csv(results: Sequence[ClaimResult]) -> str:
    """``claims.csv``: one line per claim (:data:`CSV_HEADER`); the seed values joined by ``;``."""
    lines: list[list[Any]] = [CSV_HEADER]
    for r in results:
        t = r.test
        sides: list[Any] = []
        for s in (r.better, r.worse):
            sides += [s.row or s.entry, _num(s.mean) if s.values else "", _num(s.se) if s.values else "",
                      len(s.values), ";".join(repr(v) for v in s.values)]
        lines.append([r.claim.id, r.claim.paper, r.claim.statement, r.claim.dataset, r.quantity, r.claim.metric,
                      r.claim.detail, r.claim.curve, int(r.higher_is_better), *sides,
                      "" if t is None else _num(t.t), "" if t is None else _num(t.df),
                      "" if t is None else _num(t.p_claimed), "" if t is None else _num(t.p_two_sided),
                      r.verdict, r.reason, r.claim.finding, r.source])
    return "\n".join(",".join(_csv_field(v) for v in line) for line in lines) + "\n"


def to_records(results: Sequence[ClaimResult]) -> list[dict[str, Any]]:
    """JSON-able records (results.json's ``claims``): the claim, both sides' values, the test, the verdict.
    Non-finite numbers are left for the caller to null (``benchbed.leaderboard._finite``)."""
    out = []
    for r in results:
        t = r.test
        out.append({
            "id": r.claim.id, "paper": r.claim.paper, "statement": r.claim.statement, "dataset": r.claim.dataset,
            "metric": r.claim.metric, "detail": r.claim.detail, "curve": r.claim.curve, "quantity": r.quantity,
            "higher_is_better": r.higher_is_better, "source": r.source,
            "better": _side(r, "better"), "worse": _side(r, "worse"),
            "test": None if t is None else {"t": t.t, "df": t.df, "p_one_sided": t.p_claimed,
                                            "p_opposite": t.p_opposite, "p_two_sided": t.p_two_sided},
            "test_display": r.test_text, "verdict": r.verdict, "reason": r.reason,
            "finding": r.claim.finding,
        })
    return out


def _side(r: ClaimResult, which: str) -> dict[str, Any]:
    s = r.better if which == "better" else r.worse
    return {"entry": getattr(r.claim, which), "row": s.row, "values": s.values,
            "mean": s.mean if s.values else None, "se": s.se if s.values else None, "n_ok": len(s.values),
            "n": s.n, "estimators": sorted(s.tags), "display": s.text, "reason": s.reason}


def to_html(results: Sequence[ClaimResult]) -> str:
    """The HTML page's ``Claims`` section body: the legend and one table row per claim."""
    from benchbed.html import markdown_html, markdown_inline

    head = "".join(f"<th>{h}</th>" for h in ("claim", "paper", "data set", "compared", "values", "test", "verdict"))
    body = []
    for r in results:
        verdict = f"<strong>{html.escape(r.verdict)}</strong>" + (f": {html.escape(r.reason)}" if r.reason else "")
        if finding := _finding(r):
            verdict += f". <em>Finding:</em> {markdown_inline(finding)}"
        cells = [f"<code>{html.escape(r.claim.id)}</code>: {html.escape(r.claim.statement)}",
                 markdown_inline(r.claim.paper), html.escape(r.claim.dataset), html.escape(compared(r)),
                 html.escape(values_text(r)), html.escape(r.test_text), verdict]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (markdown_html(LEGEND) + f'<div class="scroll"><table class="claims"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")
