"""Leaderboards from the store: one table per data set, rows = model (+ sampler), columns = metrics.

Cells show mean ± std over seeds; headers carry ↑/↓; the best model value per column is bold;
``n/a``, ``failed`` and ``diverged`` cells carry a numbered note with the reason.  Cost columns:
training time, steps, parameters.  Written as Markdown (the suite folder's README.md), CSV and
LaTeX (booktabs), and as a static HTML page with sample grids and training curves (:mod:`benchbed.html`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchbed.registry import Registry
from benchbed.store import Store
from benchbed.suite import Suite, config_hash

FORMATS = ("md", "csv", "tex", "html")
FILENAMES = {"md": "README.md", "csv": "results.csv", "tex": "table.tex", "html": "index.html"}


def fmt(value: float, digits: int = 4) -> str:
    """``digits`` significant digits; scientific notation only for very large or small magnitudes."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


@dataclass
class Notes:
    """Numbered footnotes (reasons of n/a and failures), deduplicated."""

    items: list[str] = field(default_factory=list)

    def ref(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1


@dataclass(frozen=True)
class MetricColumn:
    label: str
    title: str
    higher_is_better: bool | None

    @property
    def header(self) -> str:
        arrow = "" if self.higher_is_better is None else (" ↑" if self.higher_is_better else " ↓")
        return self.title + arrow


def metric_columns(suite: Suite, registry: Registry | None) -> list[MetricColumn]:
    cols = []
    for e in suite.metrics:
        spec = None
        if registry is not None and e.component in registry.entries["metric"]:
            spec = registry.metric(e.component)
        title = e.label if e.label != e.component or spec is None else spec.title
        cols.append(MetricColumn(e.label, title, None if spec is None else spec.higher_is_better))
    return cols


def _current(row: dict[str, Any], run_ids: set[str] | None, suite: Suite) -> bool:
    """Whether a stored run belongs to the suite as it is now (edited suites leave old runs behind)."""
    if row["kind"] == "model":
        return run_ids is None or row["run_id"] in run_ids
    cfg = json.loads(row["config"])
    # Compare hashes, not dicts: the stored config went through JSON (tuples became lists).  Labels are
    # not part of the identity (a renamed entry is the same data set).
    datasets = {config_hash(d.identity()) for d in suite.datasets}
    metrics = {config_hash(m.identity()) for m in suite.metrics}
    return config_hash(cfg.get("dataset")) in datasets \
        and config_hash(cfg.get("metric")) in metrics and cfg.get("seed") in suite.seeds


def tidy(store: Store, suite: Suite, run_ids: set[str] | None = None,
         labels: dict[str, tuple[str, str, str]] | None = None) -> pd.DataFrame:
    """One row per (run, metric) of the suite, with a ``row`` label = model (+ sampler).

    ``run_ids``: the cells of the suite's current plan; runs of earlier versions are left out.
    ``labels``: ``run_id -> (model, sampler, dataset)`` labels of the current plan; labels are not part
    of a cell's identity, so a renamed entry keeps its stored run and is shown under its new name.
    """
    df = pd.DataFrame([r for r in store.frame(suite.name) if _current(r, run_ids, suite)])
    if df.empty:
        return df
    by_hash = {config_hash(d.identity()): d.label for d in suite.datasets}
    for i, r in df.iterrows():
        if r["kind"] == "model" and labels and r["run_id"] in labels:
            df.loc[i, ["model", "sampler", "dataset"]] = list(labels[r["run_id"]])
        elif r["kind"] == "reference":
            df.loc[i, "dataset"] = by_hash.get(config_hash(json.loads(r["config"]).get("dataset")), r["dataset"])
    df = df[df["run_status"] != "running"].copy()
    df["row"] = df["model"] + df["sampler"].map(lambda s: f" + {s}" if s else "")
    return df


def _differing_params(df: pd.DataFrame) -> dict[str, str]:
    """``row -> "k=v, ..."`` for parameters that differ between rows of the same model component."""
    out: dict[str, str] = {}
    runs = df[df["kind"] == "model"].drop_duplicates("row")
    for _, group in runs.groupby("model_component"):
        params = {r["row"]: json.loads(r["config"])["model"]["params"] for _, r in group.iterrows()}
        keys = sorted({k for p in params.values() for k in p})
        differing = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params.values()}) > 1]
        for row, p in params.items():
            out[row] = ", ".join(f"{k}={p.get(k)}" for k in differing)
    return out


@dataclass
class DatasetTable:
    """The table of one data set: display strings, raw means (for CSV) and notes."""

    dataset: str
    frame: pd.DataFrame  # display strings, index = row label
    stats: pd.DataFrame  # tidy numbers: row, metric, mean, std, n_ok, n, status, reason
    best: dict[str, str]  # metric label -> row label with the best mean
    runs: dict[str, list[str]] = field(default_factory=dict)  # model row label -> its ok run ids, by seed


def build_tables(store: Store, suite: Suite, registry: Registry | None = None,
                 notes: Notes | None = None) -> tuple[list[DatasetTable], Notes]:
    """The per-data-set tables of a suite from the store."""
    notes = notes or Notes()
    run_ids, labels = None, None
    if registry is not None:
        from benchbed.grid import plan

        cells = plan(suite, registry)[0]
        run_ids = {c.run_id for c in cells}
        labels = {c.run_id: (c.model.label, c.sampler_label, c.dataset.label) for c in cells}
    df = tidy(store, suite, run_ids, labels)
    columns = metric_columns(suite, registry)
    tables: list[DatasetTable] = []
    if df.empty:
        return tables, notes
    params = _differing_params(df)
    for dataset in [d.label for d in suite.datasets]:
        sub = df[df["dataset"] == dataset]
        if sub.empty:
            continue
        order = list(dict.fromkeys(sub.sort_values("kind", ascending=False, kind="stable")["row"]))
        stats_rows, display, runs_of = [], {}, {}
        for row in order:
            runs = sub[sub["row"] == row]
            kind = runs["kind"].iloc[0]
            first = runs.drop_duplicates("run_id")
            cells: dict[str, str] = {}
            for col in columns:
                cells[col.header] = _cell(runs, first, col, notes, stats_rows, row, kind)
            model_runs = first[first["run_status"] == "ok"]
            if kind == "model":
                runs_of[row] = list(model_runs.sort_values("seed")["run_id"])
                cells["params"] = params.get(row, "")
                cells["train s"] = fmt(model_runs["train_time"].mean()) if len(model_runs) else ""
                cells["steps"] = str(int(first["train_steps"].max())) if len(first) else ""
                cells["parameters"] = f"{int(first['n_params'].max()):,}" if first["n_params"].max() else ""
                cells["seeds"] = f"{len(model_runs)}/{len(first)}"
            else:
                cells.update({"params": "reference", "train s": "", "steps": "", "parameters": "", "seeds": ""})
            display[row] = cells
        stats = pd.DataFrame(stats_rows)
        best = _best(stats, columns)
        frame = pd.DataFrame.from_dict(display, orient="index")
        if not any(frame["params"].astype(bool) & (frame["params"] != "reference")):
            frame = frame.drop(columns=["params"])
        tables.append(DatasetTable(dataset, frame, stats, best, runs_of))
    return tables, notes


def _cell(runs: pd.DataFrame, first: pd.DataFrame, col: MetricColumn, notes: Notes,
          stats_rows: list[dict[str, Any]], row: str, kind: str) -> str:
    """Display string of one (row, metric) cell; appends its numbers to ``stats_rows``."""
    n = len(first)
    bad = first[first["run_status"].isin(["failed", "diverged"])]
    vals = runs[(runs["metric"] == col.label)]
    ok = vals[vals["metric_status"] == "ok"]
    mean = float(ok["value"].mean()) if len(ok) else math.nan
    std = float(ok["value"].std(ddof=1)) if len(ok) > 1 else math.nan
    status, reason = "ok", ""
    if len(bad) == n and n:
        status, reason = bad["run_status"].iloc[0], str(bad["error"].iloc[0])
    elif len(ok) == 0:
        other = vals[vals["metric_status"] != "ok"]
        if other.empty:
            if kind == "reference":
                return ""
            status, reason = "missing", "not evaluated"
        else:
            status, reason = str(other["metric_status"].iloc[0]), str(other["reason"].iloc[0])
    stats_rows.append({"row": row, "kind": kind, "metric": col.label, "mean": mean, "std": std, "n_ok": len(ok),
                       "n": n, "status": status, "reason": reason})
    if status != "ok":
        return f"{status} [{notes.ref(reason)}]"
    text = fmt(mean) + (f" ± {fmt(std, 2)}" if not math.isnan(std) else "")
    if len(ok) < n:
        text += f" ({len(ok)}/{n} seeds) [{notes.ref(_partial_reason(vals, bad))}]"
    return text


def _partial_reason(vals: pd.DataFrame, bad: pd.DataFrame) -> str:
    reasons = list(bad["error"]) + list(vals[vals["metric_status"] != "ok"]["reason"])
    return reasons[0] if reasons else "some seeds missing"


def _best(stats: pd.DataFrame, columns: list[MetricColumn]) -> dict[str, str]:
    best: dict[str, str] = {}
    if stats.empty:
        return best
    for col in columns:
        s = stats[(stats["metric"] == col.label) & (stats["kind"] == "model") & (stats["status"] == "ok")]
        s = s.dropna(subset=["mean"])
        s = s[s["n_ok"] == s["n"]]  # a row missing seeds is not comparable
        if col.higher_is_better is None or len(s) < 2:
            continue
        idx = s["mean"].idxmax() if col.higher_is_better else s["mean"].idxmin()
        best[col.header] = str(s.loc[idx, "row"])
    return best


# -- renderers ------------------------------------------------------------------------------------


def _bold(frame: pd.DataFrame, best: dict[str, str], wrap: tuple[str, str]) -> pd.DataFrame:
    out = frame.copy()
    for header, row in best.items():
        if header in out.columns and row in out.index:
            out.loc[row, header] = f"{wrap[0]}{out.loc[row, header]}{wrap[1]}"
    return out


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(tables: list[DatasetTable], notes: Notes) -> str:
    """All tables as GitHub Markdown (bold best, numbered notes below)."""
    parts = []
    for t in tables:
        frame = _bold(t.frame, t.best, ("**", "**"))
        header = "| model | " + " | ".join(frame.columns) + " |"
        sep = "|---|" + "|".join("---" for _ in frame.columns) + "|"
        rows = [f"| {_md_escape(idx)} | " + " | ".join(_md_escape(v) for v in r) + " |" for idx, r in frame.iterrows()]
        parts.append(f"### {t.dataset}\n\n" + "\n".join([header, sep, *rows]))
    if notes.items:
        parts.append("Notes:\n\n" + "\n".join(f"{i}. {_md_escape(n)}" for i, n in enumerate(notes.items, 1)))
    return "\n\n".join(parts) + "\n"


def to_csv(tables: list[DatasetTable]) -> str:
    """Tidy numbers: one line per (data set, row, metric)."""
    frames = [t.stats.assign(dataset=t.dataset) for t in tables if not t.stats.empty]
    if not frames:
        return "dataset,row,kind,metric,mean,std,n_ok,n,status,reason\n"
    df = pd.concat(frames)[["dataset", "row", "kind", "metric", "mean", "std", "n_ok", "n", "status", "reason"]]
    return df.to_csv(index=False, float_format="%.6g")


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "·": r"$\cdot$", "²": r"$^2$",
                "×": r"$\times$", "≈": r"$\approx$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(c, c) for c in str(text))


def to_latex(tables: list[DatasetTable], notes: Notes, caption: str = "") -> str:
    """booktabs tables, one per data set; best values in bold."""
    out = ["% Generated by benchbed from the result store; needs \\usepackage{booktabs}."]
    for t in tables:
        frame = t.frame.copy()
        cells = {(r, c): tex_escape(frame.loc[r, c]) for r in frame.index for c in frame.columns}
        for header, row in t.best.items():
            if (row, header) in cells:
                cells[(row, header)] = r"\textbf{" + cells[(row, header)] + "}"
        out += [r"\begin{table}[t]", r"\centering", r"\small",
                r"\begin{tabular}{l" + "r" * len(frame.columns) + "}", r"\toprule",
                " & ".join(["model", *map(tex_escape, frame.columns)]) + r" \\", r"\midrule"]
        out += [" & ".join([tex_escape(r), *(cells[(r, c)] for c in frame.columns)]) + r" \\" for r in frame.index]
        label = "".join(ch if ch.isalnum() else "-" for ch in t.dataset)
        out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex_escape(caption)} {tex_escape(t.dataset)}.}}",
                rf"\label{{tab:benchbed-{label}}}", r"\end{table}", ""]
    if notes.items:
        out.append("% Notes: " + " | ".join(f"[{i}] {n}" for i, n in enumerate(notes.items, 1)).replace("\n", " "))
    return "\n".join(out) + "\n"


def to_html(suite: Suite, tables: list[DatasetTable], notes: Notes, store: Store) -> str:
    """The static page (:mod:`benchbed.html`): the tables, then per data set samples and training curves."""
    from benchbed import html
    from benchbed.preview import Preview

    sections = []
    for t in tables:
        refs = {r for r in t.frame.index if r not in t.runs}
        rows = [(str(r), [str(v) for v in t.frame.loc[r]]) for r in t.frame.index]
        body = [html.table_html(rows, list(t.frame.columns), t.best, refs)]
        previews, curves = [], []
        for row, run_ids in t.runs.items():
            payload = next((p for p in map(store.preview, run_ids) if p), None)
            if payload:
                previews.append((row, Preview.from_bytes(payload)))
            points = next((c for c in (store.run(r)["curves"] for r in run_ids) if c), None)
            if points:
                curves.append((row, points))
        if previews:
            body.append(f'<h3>Samples</h3><img alt="samples of each model" src="{html.samples_figure(previews)}">')
        if curves:
            body.append(f'<h3>Training curves</h3><img alt="training curves" src="{html.curves_figure(curves)}">')
        sections.append((t.dataset, "\n".join(body)))
    intro = [suite.description.strip(),
             f"Generated by benchbed from the result store of a real run of suite {suite.name}. Seeds: "
             f"{', '.join(map(str, suite.seeds))}. Cells: mean ± std over seeds; ↑/↓: direction of better; bold: "
             "best model per column. Figures show the first seed.",
             _provenance_summary(store, suite)]
    return html.page(f"Leaderboard: {suite.name}", intro, sections, notes.items)


def render(fmt: str, store: Store, suite: Suite, tables: list[DatasetTable], notes: Notes) -> str:
    """One leaderboard format (:data:`FORMATS`) as text."""
    if fmt == "md":
        return readme(suite, tables, notes, store)
    if fmt == "csv":
        return to_csv(tables)
    if fmt == "tex":
        return to_latex(tables, notes, caption=f"benchbed suite {suite.name}:")
    if fmt == "html":
        return to_html(suite, tables, notes, store)
    raise ValueError(f"unknown leaderboard format {fmt!r}; choose from {', '.join(FORMATS)}")


def readme(suite: Suite, tables: list[DatasetTable], notes: Notes, store: Store) -> str:
    """The suite folder's README.md: what was run, how to reproduce it, the tables, provenance."""
    prov = _provenance_summary(store, suite)
    lines = [f"# Leaderboard: {suite.name}", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [
        "Generated by `benchbed leaderboard` from the result store of a real run; do not edit by hand.",
        f"Reproduce with `benchbed run {suite.name}`. The same tables, sortable, with every model's samples "
        "and training curves: [index.html](index.html) (self-contained; open it in a browser).", "",
        f"Seeds: {', '.join(map(str, suite.seeds))}. Cells: mean ± std over seeds. ↑/↓: direction of better; "
        "**bold**: best model per column. `train s`: training wall time per seed.", "",
    ]
    if prov:
        lines += [prov, ""]
    lines.append(to_markdown(tables, notes))
    return "\n".join(lines)


def _provenance_summary(store: Store, suite: Suite) -> str:
    rows = [r for r in store.frame(suite.name) if r["kind"] == "model"]
    if not rows:
        return ""
    runs = (store.run(r["run_id"]) for r in reversed(rows))
    run = next((r for r in runs if r is not None and r["provenance"]), None)
    if run is None:
        return ""
    p = run["provenance"]
    return (f"Provenance: benchbed {p.get('benchbed')} (commit {str(p.get('git_commit'))[:12]}), "
            f"torch {p.get('torch')}, device {p.get('device')}, Python {p.get('python')}. "
            "Every result in the store carries its full provenance (`benchbed show RUN`).")


def write(store: Store, suite: Suite, registry: Registry | None, folder: Path,
          formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write the requested formats into ``folder``; returns the paths written."""
    tables, notes = build_tables(store, suite, registry)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in formats:
        path = folder / FILENAMES[f]
        path.write_text(render(f, store, suite, tables, notes), encoding="utf-8")
        paths.append(path)
    return paths
