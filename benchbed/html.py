"""The static HTML leaderboard page: sortable tables, cost-quality plots, samples and curves.

What a leaderboard holds: ``docs/architecture.md#leaderboards``.

One self-contained file (``index.html`` in the suite folder): per data set

* the same table as the Markdown leaderboard (click a header to sort, first toward the better end;
  best values bold, ties marked ``≈``; numbered notes), in a box that scrolls sideways when wide;
* a cost-quality figure: per metric with a direction, each model's mean (± standard error) against
  its training time per seed, with the Pareto front (no other model both faster and better);
* the stored sample preview of every model next to the test data (:mod:`benchbed.preview`; image
  grids, or scatter plots of the first two coordinates for vector data), from each model's first
  seed that has one;
* the training curves of every model: per recorded loss the mean over all seeds that finished, with
  the min-max band over those seeds;
* when the suite evaluates metrics over training (``eval_at``), one figure per metric: each model's
  mean over seeds against the training step and against the cumulative training time, the final
  budget's value as the last point (:func:`progress_figure`).

Figures are PNGs embedded as data URIs (no other file, no network), drawn at :data:`DPI` with text of
at least :data:`FONT_PT` points and at most :data:`MAX_COLUMNS` panels a row, so they show at their
natural size within the page's width.  The page is deterministic: the same store gives the same bytes.
Prose (the suite's description, legends, notes) is Markdown, converted by :func:`markdown_html`.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import struct
import textwrap
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox, ScaledTranslation

from benchbed.plateau import Curve, aggregate_progress, run_progress
from benchbed.preview import Preview

if TYPE_CHECKING:
    from benchbed.claims import ClaimResult
    from benchbed.store import Store
    from benchbed.tables import DatasetTable, Leaderboard, Notes

DPI = 100
FONT_PT = 9.0  # the smallest text in a figure
PANEL_WIDTH = 2.75  # inches: MAX_COLUMNS panels a row make 1100 px, within the page's 1200 px body
PANEL_HEIGHT = 2.6
MAX_COLUMNS = 4
TITLE_CHARS = 30  # panel titles wrap at this many characters
_NUMBER = re.compile(r"^\s*\**([-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?)", re.IGNORECASE)

_RC: dict[Any, Any] = {  # (matplotlib types rc keys as a Literal of every key)
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs everywhere
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT,
    "legend.fontsize": FONT_PT,
    "figure.titlesize": FONT_PT,
    "legend.title_fontsize": FONT_PT,
    "axes.formatter.useoffset": False,
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em;
       box-sizing: border-box; color: #222; line-height: 1.4; }
p, li, h1, h2, h3, figcaption { overflow-wrap: anywhere; }
code { font-size: 0.92em; background: #f4f4f4; padding: 0 0.2em; border-radius: 3px; }
.scroll { overflow-x: auto; max-width: 100%; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap;
         background: #fff; }
th:first-child, td:first-child { text-align: left; position: sticky; left: 0; z-index: 1; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
tr.reference td { color: #666; font-style: italic; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; }
figcaption, .note { color: #555; font-size: 0.85em; }
"""

# Click a header: sort by that column, first toward its better end (data-better="high": descending,
# "low" or none: ascending); click again: reverse.  Numbers sort numerically and come before text cells
# (n/a, failed) in both directions; empty cells come last.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var ths = table.querySelectorAll("th");
  ths.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.classList.contains("desc") ? true : th.classList.contains("asc") ? false
        : th.getAttribute("data-better") !== "high";
      ths.forEach(function (h) { h.classList.remove("asc", "desc"); });
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


# -- Markdown ---------------------------------------------------------------------------------------

_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^()\s]+)\)")
_BOLD = re.compile(r"(?<!\*)\*\*(?=[^\s*])(.+?)(?<=[^\s*])\*\*(?!\*)")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"
                     r"|(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")
_HOLD = re.compile("\x00(\\d+)\x00")
_LIST_ITEM = re.compile(r"^\s*[-*]\s+")
_SAFE_SCHEME = re.compile(r"^(?:https?:|mailto:|#|/|\.{0,2}/|[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)


def _emphasis(text: str) -> str:
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _ITALIC.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", text)


def markdown_inline(text: str) -> str:
    """One paragraph of Markdown as HTML: code spans, links, **bold**, *italics* / _italics_.

    The text is HTML-escaped first, so nothing in it becomes markup but these; links go only to
    http(s), mailto, anchors and relative paths (others stay text).
    """
    held: list[str] = []

    def hold(markup: str) -> str:
        held.append(markup)
        return f"\x00{len(held) - 1}\x00"

    def link(m: re.Match[str]) -> str:
        label, url = m.group(1), m.group(2)
        if not _SAFE_SCHEME.match(html.unescape(url)):
            return m.group(0)
        return hold(f'<a href="{url}">{_emphasis(label)}</a>')

    out = html.escape(str(text).replace("\x00", ""), quote=True)
    out = _CODE.sub(lambda m: hold(f"<code>{m.group(1)}</code>"), out)
    out = _emphasis(_LINK.sub(link, out))
    while _HOLD.search(out):  # a link's label may hold a code span
        out = _HOLD.sub(lambda m: held[int(m.group(1))], out)
    return out


def markdown_html(text: str) -> str:
    """Markdown prose as HTML: paragraphs (blank-line separated), ``-`` lists, and :func:`markdown_inline`."""
    blocks = []
    for block in re.split(r"\n[ \t]*\n", str(text).strip()):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not lines:
            continue
        if all(_LIST_ITEM.match(ln) for ln in lines):
            items = "".join(f"<li>{markdown_inline(_LIST_ITEM.sub('', ln))}</li>" for ln in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append(f"<p>{markdown_inline(chr(10).join(ln.strip() for ln in lines))}</p>")
    return "\n".join(blocks)


# -- tables -----------------------------------------------------------------------------------------


def sort_key(text: str) -> str:
    """The ``data-sort`` value of a cell: its leading number if it has one, else its text ('' if empty)."""
    m = _NUMBER.match(text)
    return m.group(1).replace(",", "") if m else text.strip()


def table_html(table: DatasetTable, notes: Notes) -> str:
    """A sortable ``<table>`` of one data set, in a box that scrolls sideways when the table is wide.

    Headers of columns with a direction carry ``data-better="high|low"`` (the first click sorts that
    way); the best cells are bold and ties carry `` ≈`` (:func:`benchbed.leaderboard.marked`).
    """
    from benchbed.leaderboard import marked

    heads = ["<th>model</th>"]
    for c in table.columns:
        better = ""
        if c.higher_is_better is not None:
            word = "high" if c.higher_is_better else "low"
            better = f' data-better="{word}" title="{word}er is better"'
        heads.append(f"<th{better}>{html.escape(c.header)}</th>")
    body = []
    for r in table.rows:
        tds = [f'<td data-sort="{html.escape(r.label)}">{html.escape(r.label)}</td>']
        for c in table.columns:
            cell = r.cells.get(c.key)
            text = "" if cell is None else cell.text(notes)
            shown = marked(cell, html.escape(text), ("<b>", "</b>")) if cell is not None and text else ""
            tds.append(f'<td data-sort="{html.escape(sort_key(text))}">{shown}</td>')
        cls = ' class="reference"' if r.kind != "model" else ""
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{"".join(heads)}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table></div>")


# -- figures ----------------------------------------------------------------------------------------


def _grid(n: int) -> tuple[int, int]:
    cols = min(MAX_COLUMNS, max(1, n))
    return math.ceil(n / cols), cols


def _figure(n_panels: int, extra_height: float = 0.0) -> tuple[Figure, list]:
    """A figure of ``n_panels`` panels, :data:`MAX_COLUMNS` a row (call inside ``_style()``)."""
    rows, cols = _grid(n_panels)
    fig = Figure(figsize=(cols * PANEL_WIDTH, rows * PANEL_HEIGHT + extra_height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    engine = fig.get_layout_engine()
    assert isinstance(engine, ConstrainedLayoutEngine)
    engine.set(h_pad=0.06, w_pad=0.06, hspace=0.04, wspace=0.04)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _style() -> AbstractContextManager[None]:  # matplotlib's rc_context
    return matplotlib.rc_context(_RC)


def _title(ax: Axes, label: str) -> None:
    ax.set_title(textwrap.fill(label, TITLE_CHARS), fontsize=FONT_PT)


def _legend_below(ax: Axes, handles: Sequence[Line2D] | None, inches: float, ncol: int) -> None:
    """A legend ``inches`` below the axes (clear of tick labels and x label; the layout makes room)."""
    below = ax.transAxes + ScaledTranslation(0.0, -inches, ax.figure.dpi_scale_trans)
    kwargs = {} if handles is None else {"handles": handles}
    ax.legend(**kwargs, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=ncol,
              frameon=False, handlelength=1.4, columnspacing=1.0, borderaxespad=0.0)


def _seconds_axis(ax: Axes, seconds: Sequence[float]) -> None:
    """A log x axis of seconds with plain labels (1, 2, 5 per decade over at most two decades)."""
    ax.set_xscale("log")
    decades = math.log10(max(seconds) / min(seconds)) if seconds else 0.0
    ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0,) if decades > 2 else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("train s per seed")


def _png(fig: Figure) -> str:
    """The figure as a PNG data URI (no "Software" chunk, so matplotlib builds do not change the bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_size(src: str) -> tuple[int, int]:
    """(width, height) in pixels of a PNG data URI."""
    head = base64.b64decode(src.split(",", 1)[1][:44])
    return struct.unpack(">II", head[16:24])


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
    image = previews[0][1].kind == "image"
    lo, hi = float(data.min()), float(data.max())
    pts = data.reshape(len(data), -1).astype(np.float32)
    x_col, y_col = 0, min(1, pts.shape[1] - 1)  # the first two coordinates (the same one if 1-D)
    centre = np.median(pts, axis=0)
    half = 1.5 * np.abs(pts - centre).max(axis=0) + 1e-6
    with _style():
        fig, axes = _figure(len(panels))
        for ax, (label, x) in zip(axes, panels, strict=True):
            if x.shape[1:] != data.shape[1:]:  # a model that emitted the wrong shape (stored before the guard)
                ax.text(0.5, 0.5, f"shape {tuple(x.shape)}", ha="center", va="center", fontsize=FONT_PT)
            elif image:
                ax.imshow(tile(x, lo, hi), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.scatter(pts[:, x_col], pts[:, y_col], s=2, c="#bbbbbb", linewidths=0)
                if x is not data:
                    s = x.reshape(len(x), -1).astype(np.float32)
                    ax.scatter(s[:, x_col], s[:, y_col], s=2, c="#d62728", linewidths=0)
                    # The view is the data's extent; say how many samples fell outside it rather than
                    # zooming out until the data is a dot.
                    if outside := count_outside(s[:, [x_col, y_col]], centre[[x_col, y_col]], half[[x_col, y_col]]):
                        label = f"{label} ({outside}/{len(s)} outside)"
                ax.set_xlim(centre[x_col] - half[x_col], centre[x_col] + half[x_col])
                ax.set_ylim(centre[y_col] - half[y_col], centre[y_col] + half[y_col])
            _title(ax, label)
            ax.set_xticks([])
            ax.set_yticks([])
        return _png(fig)


@dataclass(frozen=True)
class Band:
    """One loss over seeds: at each step the mean, min and max of the seeds' finite values, and their count."""

    steps: list[float]
    mean: list[float]
    lo: list[float]
    hi: list[float]
    n: list[int]


def aggregate_curves(runs: Sequence[Sequence[Mapping[str, float]]]) -> dict[str, Band]:
    """Per loss key (in order of first appearance): the curves of all ``runs`` (one list of points per
    seed, ``{"step": s, key: value, ...}``) aggregated step by step over the seeds that have a finite
    value there."""
    keys = dict.fromkeys(k for points in runs for p in points for k in p if k != "step")
    out = {}
    for key in keys:
        by_step: dict[float, list[float]] = {}
        for points in runs:
            for p in points:
                v = p.get(key)
                if v is not None and math.isfinite(v):
                    by_step.setdefault(float(p["step"]), []).append(float(v))
        steps = sorted(by_step)
        if steps:
            vals = [by_step[s] for s in steps]
            out[key] = Band(steps, [math.fsum(v) / len(v) for v in vals], [min(v) for v in vals],
                            [max(v) for v in vals], [len(v) for v in vals])
    return out


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


def curves_figure(curves: Sequence[tuple[str, Sequence[Sequence[Mapping[str, float]]]]]) -> str:
    """Training curves, one panel per model: ``curves`` = (title, the curve of every seed).  Per loss the
    mean over the seeds (line) and their min-max (band) against the step: a PNG data URI."""
    with _style():
        fig, axes = _figure(len(curves))
        for ax, (label, runs) in zip(axes, curves, strict=True):
            bands = aggregate_curves(runs)
            for i, (key, b) in enumerate(bands.items()):
                color = f"C{i % 10}"
                ax.plot(b.steps, b.mean, lw=1.0, color=color, label=key)
                if max(b.n) > 1:
                    ax.fill_between(b.steps, b.lo, b.hi, color=color, alpha=0.25, linewidth=0)
            points = [{"step": s, "lo": lo, "hi": hi} for b in bands.values()
                      for s, lo, hi in zip(b.steps, b.lo, b.hi, strict=True)]
            if points and (limits := curve_limits(points, ["lo", "hi"])):
                ax.set_ylim(*limits)
            _title(ax, label)
            if bands:
                _legend_below(ax, None, 0.3, 2)
        return _png(fig)


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the (time, value) ``points`` that no other point dominates (at most as slow and at
    least as good, and strictly better in one), ordered by time then value; non-finite points are left out."""
    sign = 1.0 if higher_is_better else -1.0
    ok = [i for i, (t, v) in enumerate(points) if math.isfinite(t) and math.isfinite(v)]
    front = []
    for i in ok:
        ti, vi = points[i][0], sign * points[i][1]
        if not any(points[j][0] <= ti and sign * points[j][1] >= vi and (points[j][0] < ti or sign * points[j][1] > vi)
                   for j in ok if j != i):
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], sign * points[i][1], i))


@dataclass
class CostPanel:
    """One metric of the cost-quality figure: ``points`` = (model number, mean, standard error, tag)."""

    title: str
    higher_is_better: bool
    points: list[tuple[int, float, float, str]] = field(default_factory=list)
    references: list[tuple[str, float]] = field(default_factory=list)  # model-free rows: (label, value)
    ranks_across: bool = False  # the metric ranks values of different tags together: one front


_MARKERS = "osD^vP*X"
# Where a point's number goes (offset in points, alignment), in order of preference.
_LABEL_SPOTS = ((4, 3, "left", "bottom"), (4, -3, "left", "top"), (-4, 3, "right", "bottom"),
                (-4, -3, "right", "top"), (0, 6, "center", "bottom"), (0, -6, "center", "top"),
                (8, 0, "left", "center"), (-8, 0, "right", "center"))


def _area(box: Bbox | None) -> float:
    return 0.0 if box is None else box.width * box.height


def place_labels(ax: Axes, labels: Sequence[tuple[float, float, str, bool]]) -> None:
    """Write each (x, y, text, bold) label beside its point, at the first spot of :data:`_LABEL_SPOTS`
    that covers no marker, no label placed before and nothing outside the axes (else the least bad one).
    Call after the figure's layout is drawn; the labels do not take part in the layout."""
    canvas = ax.figure.canvas
    assert isinstance(canvas, FigureCanvasAgg)  # the canvas _figure attaches
    renderer = canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    marker = 4.0  # half a marker, pixels
    corners = [ax.transData.transform((x, y)) - marker for x, y, _, _ in labels]
    taken = [Bbox.from_bounds(float(cx), float(cy), 2 * marker, 2 * marker) for cx, cy in corners]
    for x, y, text, bold in labels:
        best: tuple[float, Annotation, Bbox] | None = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                              fontsize=FONT_PT, fontweight="bold" if bold else "normal", zorder=4)
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer)
            outside = _area(box) - _area(Bbox.intersection(box, frame))
            bad = outside + sum(_area(Bbox.intersection(box, t)) for t in taken)
            if best is None or bad < best[0]:
                if best is not None:
                    best[1].remove()
                best = (bad, ann, box)
            else:
                ann.remove()
            if bad == 0:
                break
        assert best is not None  # _LABEL_SPOTS is not empty
        taken.append(best[2])


def cost_quality_figure(models: Sequence[tuple[str, float]], panels: Sequence[CostPanel]) -> str:
    """Quality against training cost: per panel (metric) one point per model (``models`` = (label,
    seconds), numbered from 1 in that order), the mean with its standard error, and the Pareto front of
    each estimator tag (points of different tags are not compared) or, for a panel that ranks across
    tags, one front: a PNG data URI."""
    # tab20 holds pairs (strong, pale): the 10 strong colours first (= tab10), then the pale ones
    colors = {n: matplotlib.colormaps["tab20"](2 * ((n - 1) % 10) + (n - 1) // 10 % 2) for n in range(1, 21)}
    with _style():
        legend_rows = math.ceil((len(models) + 1) / MAX_COLUMNS)
        local_rows = [len(set(t for *_, t in p.points) - {""}) + len(p.references) for p in panels]
        below = sum(max(local_rows[i:i + MAX_COLUMNS]) for i in range(0, len(panels), MAX_COLUMNS))
        fig, axes = _figure(len(panels), extra_height=0.2 * (legend_rows + below))
        pending = []
        for ax, panel in zip(axes, panels, strict=True):
            tags = list(dict.fromkeys(tag for _, _, _, tag in panel.points))
            marker = {tag: _MARKERS[i % len(_MARKERS)] for i, tag in enumerate(tags)}
            local, labels = [], []
            fronts = [""] if panel.ranks_across else tags
            for front_tag in fronts:
                group = [(n, m, se, t) for n, m, se, t in panel.points if panel.ranks_across or t == front_tag]
                xy = [(models[n - 1][1], m) for n, m, _, _ in group]
                front = pareto_front(xy, panel.higher_is_better)
                if front:
                    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], drawstyle="steps-post",
                            color="black", lw=1.2, zorder=1)
                for i, (n, m, se, tag) in enumerate(group):
                    on = i in front
                    color = colors[(n - 1) % 20 + 1]
                    if math.isfinite(se):
                        ax.errorbar([xy[i][0]], [m], yerr=[se], fmt="none", ecolor=color, elinewidth=1.0,
                                    capsize=2, zorder=2)
                    ax.plot([xy[i][0]], [m], marker=marker[tag], linestyle="", markersize=7 if on else 5,
                            color=color, markeredgecolor="black" if on else color, markeredgewidth=1.0, zorder=3)
                    labels.append((xy[i][0], m, str(n), on))
            for tag in tags:
                if len(tags) > 1 or tag:
                    local.append(Line2D([], [], marker=marker[tag], color="0.4", linestyle="", label=tag or "(no tag)"))
            for i, (label, value) in enumerate(panel.references):
                ax.axhline(value, color="0.45", lw=1.0, ls=("--", ":", "-.")[i % 3], zorder=0)
                local.append(Line2D([], [], color="0.45", lw=1.0, ls=("--", ":", "-.")[i % 3], label=label))
            if panel.points:
                _seconds_axis(ax, [models[n - 1][1] for n, _, _, _ in panel.points])
                ax.margins(x=0.15, y=0.12)
            else:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
            _title(ax, panel.title)
            if local:
                _legend_below(ax, local, 0.5, 1)
            pending.append((ax, labels))
        handles = [Line2D([], [], marker="o", linestyle="", color=colors[(n - 1) % 20 + 1], label=f"{n} {label}")
                   for n, (label, _) in enumerate(models, 1)]
        handles.append(Line2D([], [], color="black", lw=1.2, marker="o", markerfacecolor="white",
                              markeredgecolor="black", label="Pareto front"))
        fig.legend(handles=handles, loc="outside lower center", ncol=min(MAX_COLUMNS, len(handles)), frameon=False)
        fig.canvas.draw()  # the layout, so that labels can be placed in pixels
        for ax, labels in pending:
            place_labels(ax, labels)
        return _png(fig)


# -- metrics over training (eval_at) ---------------------------------------------------------------


def progress_figure(header: str, series: Sequence[Curve]) -> str:
    """One metric over training: the models' :class:`benchbed.plateau.Curve` against the step (left) and the training
    seconds per seed (right), one colour per model: a PNG data URI."""
    with _style():
        fig, (by_step, by_time) = _figure(2, extra_height=0.25 * math.ceil(len(series) / 2))
        handles = []
        for i, s in enumerate(series):
            color = f"C{i % 10}"
            handles.append(by_step.plot(s.steps, s.values, "o-", ms=3, lw=1.0, color=color, label=s.label)[0])
            by_time.plot(s.seconds, s.values, "o-", ms=3, lw=1.0, color=color)
        for ax, xlabel in ((by_step, "training step"), (by_time, "train s per seed")):
            _title(ax, header)
            ax.set_xlabel(xlabel)
        _legend_below(by_step, handles, 0.45, 2)
        return _png(fig)


def progress_figures(store: Store, board: Leaderboard, table: DatasetTable) -> list[tuple[str, str]]:
    """(metric header, :func:`progress_figure`) for each metric column of ``table`` that some model has
    a value of at an intermediate step; models with no value of the metric are left out."""
    from benchbed.suite import config_hash

    hashes = {e.label: config_hash(e.identity()) for e in board.suite.metrics}
    runs = {r.label: [run for i in r.ok_run_ids if (run := store.run(i)) is not None]
            for r in table.rows if r.kind == "model"}
    if not any(run.get("eval_points") for rs in runs.values() for run in rs):
        return []
    figures = []
    for c in table.metric_columns:
        if c.key not in hashes:
            continue
        series = [aggregate_progress(label, [run_progress(run, c.key, hashes[c.key]) for run in rs])
                  for label, rs in runs.items()]
        series = [s for s in series if s.steps]
        if any(len(s.steps) > 1 for s in series):
            figures.append((c.header, progress_figure(c.header, series)))
    return figures


_PROGRESS_CAPTION = ("{metric} over training: per model, the mean over the seeds that finished of the value on "
                     "the model saved at each of the suite's `eval_at` steps, and at the final budget (the last "
                     "point, the table's value), against the training step (left) and the cumulative training "
                     "time per seed (right, mean over seeds). A curve still moving at its last point has not "
                     "plateaued.")


# -- page -------------------------------------------------------------------------------------------


def figure_html(src: str, alt: str, caption: str) -> str:
    """An embedded PNG at its natural size, with a Markdown caption."""
    width, height = png_size(src)
    return (f'<figure><img alt="{html.escape(alt)}" width="{width}" height="{height}" src="{src}">'
            f"<figcaption>{markdown_inline(caption)}</figcaption></figure>")


def page(title: str, intro: Sequence[str], sections: Sequence[tuple[str, str]], notes: Sequence[str]) -> str:
    """The whole document: ``intro`` and ``notes`` are Markdown; ``sections`` = (data set name, its HTML body)."""
    toc = " · ".join(f'<a href="#ds-{i}">{html.escape(name)}</a>' for i, (name, _) in enumerate(sections))
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts += [markdown_html(p) for p in intro if p.strip()]
    if toc:
        parts.append(f"<p>Data sets: {toc}</p>")
    for i, (name, body) in enumerate(sections):
        parts += [f'<h2 id="ds-{i}">{html.escape(name)}</h2>', body]
    if notes:
        parts.append("<h2>Notes</h2><ol class=\"note\">"
                     + "".join(f"<li>{markdown_inline(n)}</li>" for n in notes) + "</ol>")
    parts += [f"<script>{_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def cost_panels(table: DatasetTable) -> tuple[list[tuple[str, float]], list[CostPanel]]:
    """The cost-quality figure's models (label, seconds per seed: the table's ``train s``; models with a
    positive time) and panels (metric columns with a direction and a value of at least one of them)."""
    from benchbed.tables import TRAIN_SECONDS

    models, number = [], {}
    for r in table.rows:
        if r.kind == "model" and (s := r.cells[TRAIN_SECONDS].mean) > 0:
            models.append((r.label, s))
            number[r.label] = len(models)
    panels = []
    for c in table.metric_columns:
        if c.higher_is_better is None:
            continue
        panel = CostPanel(c.header, c.higher_is_better, ranks_across=c.ranks_across)
        mixed = any(cell.show_estimator for r in table.rows if (cell := r.cells.get(c.key)))
        for r in table.rows:
            cell = r.cells.get(c.key)
            if cell is None or cell.status != "ok" or not math.isfinite(cell.mean):
                continue
            if r.kind != "model":
                panel.references.append((r.label, cell.mean))
            elif r.label in number:
                panel.points.append((number[r.label], cell.mean, cell.se, cell.estimator if mixed else ""))
        if panel.points:
            panels.append(panel)
    return models, panels


_COST_CAPTION = ("Quality against cost: per metric, each model's mean ± standard error over seeds (numbers: "
                 "models, see the legend) against its training wall time per seed (mean over seeds that "
                 "finished; log scale). Black line and outlined points: the Pareto front, the models that no "
                 "other model beats while training at most as long. Where a column mixes estimator tags "
                 "(marker shapes), each tag has its own front (values of different estimators are not "
                 "compared) unless the metric ranks its tags together (outlier scores). Grey lines: "
                 "model-free reference rows.")
_SAMPLES_CAPTION = ("Samples of each model from its first seed with a stored preview, after the test data "
                    "(first panel).")
_VECTOR_CAPTION = " Vector data: the first two coordinates; grey: test data, red: samples."
_CURVES_CAPTION = ("Training curves: per model, every recorded loss against the training step; line: the mean "
                   "over the seeds that finished (all unless the title says how many), band: their min-max. The "
                   "y range leaves out the first tenth of training.")
_CURVE_CAPTION = ("Training curves: per model, every recorded loss against the training step (one finished seed "
                  "per model). The y range leaves out the first tenth of training.")


def to_html(store: Store, board: Leaderboard, claims: Sequence[ClaimResult] = ()) -> str:
    """The static page: per data set the table, then the cost-quality plot, samples and training curves;
    with ``claims``, a last section with the claims table (:func:`benchbed.claims_table.to_html`)."""
    from benchbed.leaderboard import MARKS, UNCERTAINTY, column_names, legend_notes, provenance_summary

    notes = board.notes
    sections = []
    for t in board.tables:
        body = [table_html(t, notes)]
        for text in legend_notes(board, t):
            notes.ref(text)
        models, panels = cost_panels(t)
        if models and panels:
            src = cost_quality_figure(models, panels)
            body.append("<h3>Cost and quality</h3>" + figure_html(src, "quality against training time", _COST_CAPTION))
        previews, curves, kinds = [], [], set()
        seeds = {len(r.ok_run_ids) for r in t.rows if r.kind == "model"}
        for r in t.rows:
            if r.kind != "model":
                continue
            payload = next((p for p in map(store.preview, r.ok_run_ids) if p), None)
            if payload:
                previews.append((r.label, Preview.from_bytes(payload)))
                kinds.add(previews[-1][1].kind)
            runs = [c for c in ((store.run(i) or {}).get("curves") for i in r.ok_run_ids) if c]
            if runs:
                title = r.label if len(runs) == max(seeds) else f"{r.label} ({len(runs)} seeds)"
                curves.append((title, runs))
        if previews:
            caption = _SAMPLES_CAPTION + (_VECTOR_CAPTION if "vector" in kinds else "")
            body.append("<h3>Samples</h3>" + figure_html(samples_figure(previews), "samples of each model", caption))
        if curves:
            n = max(len(runs) for _, runs in curves)
            caption = _CURVES_CAPTION if n > 1 else _CURVE_CAPTION
            body.append("<h3>Training curves</h3>" + figure_html(curves_figure(curves), "training curves", caption))
        if progress := progress_figures(store, board, t):  # eval_at: metrics against steps and time
            body.append("<h3>Metrics over training</h3>" + "".join(
                figure_html(src, f"{header} against training steps and time",
                            _PROGRESS_CAPTION.format(metric=header)) for header, src in progress))
        sections.append((t.dataset, "\n".join(body)))
    suite = board.suite
    intro = [suite.description.strip(),
             f"Generated by benchbed from the results of a real run of suite `{suite.name}`. Seeds: "
             f"{', '.join(map(str, suite.seeds))}. {UNCERTAINTY} ↑/↓: direction of better (the first click on a "
             f"header sorts toward better). {MARKS} {column_names(board)}",
             provenance_summary(store, board)]
    if claims:
        from benchbed.claims_table import to_html as claims_html

        sections.append(("Claims", claims_html(claims)))
    return page(f"Leaderboard: {suite.name}", intro, sections, notes.items)
