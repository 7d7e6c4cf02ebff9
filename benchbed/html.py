"""The static HTML leaderboard page (DESIGN §6): sortable tables, sample grids and training curves.

One self-contained file (``index.html`` in the suite folder): per data set the same table as the
Markdown leaderboard (click a header to sort; best values bold; numbered notes), a figure with the
stored sample preview of every model next to the test data (:mod:`benchbed.preview`; image grids,
or scatter plots of the first two coordinates for vector data), and the training curves of every
model.  Figures are PNGs embedded as data URIs, so the page needs no other file and no network.
Each figure shows the run of the first seed that has one.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchbed.preview import Preview

if TYPE_CHECKING:
    from benchbed.store import Store
    from benchbed.tables import Leaderboard

PANEL_INCHES = 2.0
MAX_COLUMNS = 6
DPI = 72
_NUMBER = re.compile(r"^\s*\**([-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?)", re.IGNORECASE)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
tr.reference td { color: #666; font-style: italic; }
img { max-width: 100%; } .note { color: #555; font-size: 0.85em; }
"""

# Click a header: sort by that column; click again: reverse.  Numbers sort numerically and come
# before text cells (n/a, failed) in both directions; empty cells come last.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function rank(v) { return v === "" ? 2 : (isNaN(parseFloat(v)) ? 1 : 0); }
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
        var rx = rank(x), ry = rank(y);
        if (rx !== ry) { return rx - ry; }
        var d = rx === 0 ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def sort_key(text: str) -> str:
    """The ``data-sort`` value of a cell: its leading number if it has one, else its text ('' if empty)."""
    m = _NUMBER.match(text)
    return m.group(1).replace(",", "") if m else text.strip()


def table_html(frame_rows: Sequence[tuple[str, Sequence[str]]], columns: Sequence[str],
               best: dict[str, str], reference_rows: set[str]) -> str:
    """A sortable ``<table>``: ``frame_rows`` = (row label, cells in ``columns`` order)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["model", *columns])
    body = []
    for label, cells in frame_rows:
        tds = [f'<td data-sort="{html.escape(label)}">{html.escape(label)}</td>']
        for col, text in zip(columns, cells, strict=True):
            shown = html.escape(str(text))
            if best.get(col) == label:
                shown = f"<b>{shown}</b>"
            tds.append(f'<td data-sort="{html.escape(sort_key(str(text)))}">{shown}</td>')
        cls = ' class="reference"' if label in reference_rows else ""
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    return (f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table>")


# -- figures ----------------------------------------------------------------------------------------


def _grid(n: int) -> tuple[int, int]:
    cols = min(MAX_COLUMNS, max(1, n))
    return math.ceil(n / cols), cols


def _figure(n_panels: int) -> tuple[Figure, list]:
    rows, cols = _grid(n_panels)
    fig = Figure(figsize=(cols * PANEL_INCHES, rows * PANEL_INCHES * 1.05), dpi=DPI)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.tight_layout(pad=0.4)
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def tile(images: np.ndarray, lo: float, hi: float, gap: int = 1) -> np.ndarray:
    """[n, C, H, W] -> one near-square mosaic in [0, 1], [rows*(H+gap)-gap, cols*(W+gap)-gap(, 3)].

    C = 1 gives grey, 3 RGB.  Tiles are separated by ``gap`` mid-grey pixels (small images such as
    8x8 digits run into one another without them); unused tiles are white.
    """
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    x = np.clip((images.astype(np.float32) - lo) / max(hi - lo, 1e-8), 0.0, 1.0)
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, c), 0.5, dtype=np.float32)
    for i in range(rows * cols):
        r, q = divmod(i, cols)
        top, left = r * (h + gap), q * (w + gap)
        canvas[top:top + h, left:left + w] = x[i].transpose(1, 2, 0) if i < n else 1.0
    return canvas[..., 0] if c == 1 else canvas


def count_outside(points: np.ndarray, centre: np.ndarray, half: np.ndarray) -> int:
    """How many of ``points`` [n, k] lie outside the box ``centre`` +- ``half`` ([k] each)."""
    return int((np.abs(points - centre) > half).any(axis=1).sum())


def samples_figure(previews: Sequence[tuple[str, Preview]]) -> str:
    """The test data, then each model's samples: a PNG data URI.  All previews of one data set."""
    data = previews[0][1].data
    panels = [("data (test split)", data), *((label, p.samples) for label, p in previews)]
    fig, axes = _figure(len(panels))
    image = previews[0][1].kind == "image"
    lo, hi = float(data.min()), float(data.max())
    pts = data.reshape(len(data), -1).astype(np.float32)
    x_col, y_col = 0, min(1, pts.shape[1] - 1)  # the first two coordinates (the same one if 1-D)
    centre = np.median(pts, axis=0)
    half = 1.5 * np.abs(pts - centre).max(axis=0) + 1e-6
    for ax, (label, x) in zip(axes, panels, strict=True):
        if image and (x.ndim != 4 or x.shape[1] not in (1, 3)):  # e.g. a model emitting the wrong shape
            ax.text(0.5, 0.5, f"shape {tuple(x.shape)}", ha="center", va="center", fontsize=7)
        elif image:
            ax.imshow(tile(x, lo, hi), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.scatter(pts[:, x_col], pts[:, y_col], s=1, c="#bbbbbb", linewidths=0)
            if x is not data:
                s = x.reshape(len(x), -1).astype(np.float32)
                ax.scatter(s[:, x_col], s[:, y_col], s=1, c="#d62728", linewidths=0)
                # The view is the data's extent; say how many samples fell outside it rather than
                # zooming out until the data is a dot.
                if outside := count_outside(s[:, [x_col, y_col]], centre[[x_col, y_col]], half[[x_col, y_col]]):
                    label = f"{label} ({outside}/{len(s)} outside)"
            ax.set_xlim(centre[x_col] - half[x_col], centre[x_col] + half[x_col])
            ax.set_ylim(centre[y_col] - half[y_col], centre[y_col] + half[y_col])
        ax.set_title(label, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    return _png(fig)


def curve_limits(points: Sequence[dict[str, float]], keys: Sequence[str]) -> tuple[float, float] | None:
    """y-range of the curves after the first tenth of training (padded by 10%), or ``None``.

    Losses often start orders of magnitude above where they settle; scaling to that first spike
    would flatten everything after it into a line.
    """
    start = 0.1 * max(p["step"] for p in points)
    vals = [v for p in points if p["step"] >= start for k in keys
            if (v := p.get(k)) is not None and math.isfinite(v)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    pad = 0.1 * (hi - lo) or 0.1 * abs(hi) or 1.0
    return lo - pad, hi + pad


def curves_figure(curves: Sequence[tuple[str, list[dict[str, float]]]]) -> str:
    """Training curves, one panel per model (every recorded loss against the step): a PNG data URI."""
    fig, axes = _figure(len(curves))
    for ax, (label, points) in zip(axes, curves, strict=True):
        steps = [p["step"] for p in points]
        keys = [k for k in points[0] if k != "step"]
        for key in keys:
            ax.plot(steps, [p.get(key, math.nan) for p in points], lw=0.8, label=key)
        if limits := curve_limits(points, keys):
            ax.set_ylim(*limits)
        ax.set_title(label, fontsize=7)
        ax.tick_params(labelsize=5)
        ax.legend(fontsize=4, frameon=False)
    return _png(fig)


# -- page -------------------------------------------------------------------------------------------


def page(title: str, intro: Sequence[str], sections: Sequence[tuple[str, str]], notes: Sequence[str]) -> str:
    """The whole document: ``sections`` = (data set name, its HTML body)."""
    toc = " · ".join(f'<a href="#ds-{i}">{html.escape(name)}</a>' for i, (name, _) in enumerate(sections))
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in intro if p]
    if toc:
        parts.append(f"<p>Data sets: {toc}</p>")
    for i, (name, body) in enumerate(sections):
        parts += [f'<h2 id="ds-{i}">{html.escape(name)}</h2>', body]
    if notes:
        parts.append("<h2>Notes</h2><ol class=\"note\">"
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ol>")
    parts += [f"<script>{_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def to_html(store: Store, board: Leaderboard) -> str:
    """The static page: the tables, then per data set samples and training curves."""
    from benchbed.leaderboard import MARKS, UNCERTAINTY, legend_notes, marked, provenance_summary

    notes = board.notes
    sections = []
    for t in board.tables:
        refs = {r.label for r in t.rows if r.kind != "model"}
        rows = []
        best: dict[str, str] = {}
        for r in t.rows:
            texts = []
            for c in t.columns:
                cell = r.cells.get(c.key)
                text = "" if cell is None else cell.text(notes)
                texts.append(text if cell is None or not text else marked(cell, text, ("", "")))
                if cell is not None and cell.best:
                    best[c.header] = r.label
            rows.append((r.label, texts))
        for text in legend_notes(board, t):
            notes.ref(text)
        body = [table_html(rows, [c.header for c in t.columns], best, refs)]
        previews, curves = [], []
        for r in t.rows:
            if r.kind != "model":
                continue
            payload = next((p for p in map(store.preview, r.ok_run_ids) if p), None)
            if payload:
                previews.append((r.label, Preview.from_bytes(payload)))
            points = next((c for c in (store.run(i)["curves"] for i in r.ok_run_ids) if c), None)
            if points:
                curves.append((r.label, points))
        if previews:
            body.append(f'<h3>Samples</h3><img alt="samples of each model" src="{samples_figure(previews)}">')
        if curves:
            body.append(f'<h3>Training curves</h3><img alt="training curves" src="{curves_figure(curves)}">')
        sections.append((t.dataset, "\n".join(body)))
    suite = board.suite
    intro = [suite.description.strip(),
             f"Generated by benchbed from the results of a real run of suite {suite.name}. Seeds: "
             f"{', '.join(map(str, suite.seeds))}. {UNCERTAINTY} {MARKS}",
             provenance_summary(store, board)]
    return page(f"Leaderboard: {suite.name}", intro, sections, notes.items)
