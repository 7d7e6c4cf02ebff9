"""The HTML leaderboard page and the sample previews it shows, from real (tiny) runs of the fake plugin."""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import re
import shutil
import sqlite3
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import matplotlib.text
import numpy as np
import pytest
import torch

from benchbed import html, leaderboard, tables
from benchbed.contracts import DataBundle, DatasetInfo, Split
from benchbed.grid import plan
from benchbed.preview import N_POINTS, Preview, make_preview
from benchbed.tables import Column, DatasetTable, Notes, Row, TableCell

HEADER = '''\
name = "t"
description = """
A `toy` suite with **bold** words and a [link](https://example.org/a?b=1&c=2).

A second <paragraph> with *emphasis*.
"""
seeds = [0, 1]
[budget]
steps = 24
batch_size = 16
[datasets.toy]
'''

BODY = """
[models.good]
component = "linear"
[models.shy]
component = "linear"
sample_fails = true
[metrics.fake_mse]
[metrics.fake_ref]
"""

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Collects tables (rows of (text, data-sort) cells), header attributes, images and tag balance."""

    VOID = {"meta", "img", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tables: list[list[list[tuple[str, str | None]]]] = []
        self.headers: list[dict[str, str | None]] = []
        self.images: list[str] = []
        self.image_sizes: list[tuple[str | None, str | None]] = []
        self.bold: list[str] = []
        self._cell: list[str] | None = None
        self._sort: str | None = None
        self._in_bold = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._sort = [], a.get("data-sort")
            if tag == "th":
                self.headers.append(a)
        elif tag == "img":
            self.images.append(a["src"])
            self.image_sizes.append((a.get("width"), a.get("height")))
        elif tag == "b":
            self._in_bold = True

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()
        if tag in ("td", "th"):
            self.tables[-1][-1].append(("".join(self._cell), self._sort))
            self._cell = None
        elif tag == "b":
            self._in_bold = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_bold:
            self.bold.append(data)


@pytest.fixture
def filled(make_suite, runner):
    suite = make_suite(BODY, header=HEADER)
    summary, store = runner(suite)
    return suite, store, summary


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    assert page.stack == [], page.stack
    return page


def png_chunks(payload: bytes) -> dict[bytes, list[bytes]]:
    """The chunks of a PNG by type (their checksums checked)."""
    assert payload.startswith(PNG)
    out: dict[bytes, list[bytes]] = {}
    pos = len(PNG)
    while pos < len(payload):
        (length,) = struct.unpack(">I", payload[pos:pos + 4])
        kind, data = payload[pos + 4:pos + 8], payload[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", payload[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + data)
        out.setdefault(kind, []).append(data)
        pos += 12 + length
    return out


def check_png(src: str) -> tuple[int, int]:
    """Asserts a figure is a PNG of at least 100 dpi, at most 1150 px wide, without a Software chunk; its size."""
    assert src.startswith("data:image/png;base64,")
    chunks = png_chunks(base64.b64decode(src.split(",", 1)[1]))
    x_ppm, y_ppm, unit = struct.unpack(">IIB", chunks[b"pHYs"][0])
    assert unit == 1 and x_ppm == y_ppm and x_ppm * 0.0254 >= 99.9  # pixels per metre
    texts = b"".join(chunks.get(b"tEXt", []) + chunks.get(b"iTXt", []) + chunks.get(b"zTXt", []))
    assert b"Software" not in texts and b"matplotlib" not in texts.lower()
    width, height = struct.unpack(">II", chunks[b"IHDR"][0][:8])
    assert width <= 1150
    return width, height


def test_sort_key_reads_the_leading_number() -> None:
    assert html.sort_key("0.1653 ± 0.0018") == "0.1653"
    assert html.sort_key("-3.311 ± 3.5 (1/2 seeds) [2]") == "-3.311"
    assert html.sort_key("1.5e-05") == "1.5e-05"
    assert html.sort_key("44,290") == "44290"
    assert html.sort_key("n/a [1]") == "n/a [1]"
    assert html.sort_key("") == ""


def test_table_escapes_labels_and_marks_best_and_ties() -> None:
    columns = [Column("m", "m", False), Column("h", "h", True), Column("params", "params", None, False)]
    table = DatasetTable("d", columns, [
        Row("<x>&", "model", {"m": TableCell(status="ok", value="1.5", mean=1.5, best=True),
                              "h": TableCell(status="ok", value="3", mean=3.0, tie=True),
                              "params": TableCell(value="a")}),
        Row("y", "reference", {"m": TableCell(status="n/a", reasons=["no <reason> & more"]),
                               "params": TableCell(value="<b>")}),
    ])
    notes = Notes()
    text = html.table_html(table, notes)
    page = parse(text)
    (rows,) = page.tables
    assert [c for c, _ in rows[0]] == ["model", "m ↓", "h ↑", "params"]
    assert [h.get("data-better") for h in page.headers] == [None, "low", "high", None]
    assert rows[1][0] == ("<x>&", "<x>&")
    assert rows[1][2] == ("3 ≈", "3")  # a tie: marked, sorted by its number
    assert rows[2][1] == ("n/a [1]", "n/a [1]") and notes.items == ["no <reason> & more"]
    assert rows[2][2] == ("", "")
    assert rows[2][3] == ("<b>", "<b>")  # text, not markup
    assert page.bold == ["1.5"]
    assert '<tr class="reference">' in text
    assert text.startswith('<div class="scroll">') and text.endswith("</div>")


def test_page_has_sortable_tables_figures_and_notes(filled, fake_registry) -> None:
    suite, store, _ = filled
    board = tables.build(store, suite, fake_registry)
    text = leaderboard.render("html", store, board)
    page = parse(text)
    (table,) = page.tables
    header = [c for c, _ in table[0]]
    assert header[0] == "model" and "MSE ↓" in header
    mse = header.index("MSE ↓")
    assert page.headers[mse]["data-better"] == "low"
    rows = {r[0][0]: r for r in table[1:]}
    assert {"good", "shy"} <= set(rows)
    for label in ("good", "shy"):
        text_cell, key = rows[label][mse]
        assert float(key) == pytest.approx(float(text_cell.split()[0]))  # sorts by the mean
    best = [label for label in ("good", "shy") if board.tables[0].cell(label, "fake_mse").best]
    assert [b.split()[0] for b in page.bold] == [rows[label][mse][0].split()[0] for label in best]
    # cost-quality, samples (only "good" can draw them) and training curves: PNGs shown at their size
    assert len(page.images) == 3
    for src, size in zip(page.images, page.image_sizes, strict=True):
        assert tuple(map(str, check_png(src))) == size
    for words in ("Cost and quality", "Samples", "Training curves", "Pareto front", "min-max", "first seed"):
        assert words in text
    assert "<script>" in text and "sortable" in text and '<div class="scroll">' in text
    # the description is Markdown: rendered and escaped, no literal backticks anywhere
    assert "<code>toy</code>" in text and "<strong>bold</strong>" in text and "<em>emphasis</em>" in text
    assert '<a href="https://example.org/a?b=1&amp;c=2">link</a>' in text
    assert "&lt;paragraph&gt;" in text and "`" not in text
    assert leaderboard.render("html", store, board) == text  # deterministic


def test_curves_use_every_seed(filled, fake_registry, monkeypatch) -> None:
    suite, store, _ = filled
    board = tables.build(store, suite, fake_registry)
    seen = []
    monkeypatch.setattr(html, "curves_figure", lambda curves: seen.extend(curves) or "data:image/png;base64,")
    monkeypatch.setattr(html, "png_size", lambda src: (1, 1))
    leaderboard.render("html", store, board)
    runs = dict(seen)
    row = board.tables[0].row("good")
    assert len(row.ok_run_ids) == 2
    assert runs["good"] == [store.run(i)["curves"] for i in row.ok_run_ids]
    assert runs["good"][0] != runs["good"][1]
    band = html.aggregate_curves(runs["good"])["loss"]
    first = {p["step"]: p["loss"] for p in runs["good"][0]}
    assert any(m != pytest.approx(first[s]) for s, m in zip(band.steps, band.mean, strict=True))


def test_aggregate_curves_mean_and_band_over_seeds() -> None:
    a = [{"step": 0, "loss": 4.0, "kl": 1.0}, {"step": 1, "loss": 2.0, "kl": float("nan")}]
    b = [{"step": 0, "loss": 6.0}, {"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}]
    bands = html.aggregate_curves([a, b])
    assert list(bands) == ["loss", "kl"]
    loss = bands["loss"]
    assert loss.steps == [0.0, 1.0, 2.0] and loss.mean == [5.0, 1.5, 0.5]
    assert loss.lo == [4.0, 1.0, 0.5] and loss.hi == [6.0, 2.0, 0.5] and loss.n == [2, 2, 1]
    assert bands["kl"].steps == [0.0] and bands["kl"].n == [1]  # non-finite values are left out
    check_png(html.curves_figure([("m", [a, b]), ("a very long model label + with a sampler of a long name", [a])]))


def _dominated(points: list[tuple[float, float]], i: int, higher: bool) -> bool:
    s = 1 if higher else -1
    t, v = points[i]
    return any(u <= t and s * w >= s * v and (u < t or s * w > s * v) for j, (u, w) in enumerate(points) if j != i)


def test_pareto_front_matches_the_definition() -> None:
    rng = random.Random(0)
    for trial, higher in itertools.product(range(200), (True, False)):
        n = rng.randint(1, 9)
        points = [(float(rng.randint(1, 5)), float(rng.randint(0, 5))) for _ in range(n)]  # many ties
        front = html.pareto_front(points, higher)
        assert sorted(front) == [i for i in range(n) if not _dominated(points, i, higher)], (trial, points)
        times = [points[i][0] for i in front]
        assert times == sorted(times)
    assert html.pareto_front([(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)], True) == [0, 1]
    assert html.pareto_front([(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)], False) == [0]
    assert html.pareto_front([(math.nan, 9.0), (1.0, math.nan), (2.0, 1.0)], True) == [2]
    assert html.pareto_front([], True) == []


def test_cost_quality_figure_draws_fronts_and_references() -> None:
    models = [(f"model {i}", 0.5 * (i + 1)) for i in range(13)]
    points = [(i + 1, float(i % 4), 0.1, ("A", "B")[i % 2]) for i in range(13)]
    panels = [html.CostPanel("log-lik (nats) ↑", True, points, [("true density", 4.0)]),
              html.CostPanel("MSE ↓", False, [(1, 1.0, math.nan, ""), (2, 0.5, 0.1, "")]),
              html.CostPanel("empty ↓", False)]
    width, _ = check_png(html.cost_quality_figure(models, panels))
    assert width == round(3 * html.PANEL_WIDTH * html.DPI)


def test_figures_are_at_most_four_panels_wide() -> None:
    rng = np.random.default_rng(0)
    p = Preview("image", rng.random((36, 1, 8, 8)).astype(np.float16), rng.random((36, 1, 8, 8)).astype(np.float16))
    width, height = check_png(html.samples_figure([(f"model {i} + sampler {i}", p) for i in range(13)]))
    assert width == round(html.MAX_COLUMNS * html.PANEL_WIDTH * html.DPI) <= 1150
    assert height == round(4 * html.PANEL_HEIGHT * html.DPI)  # 14 panels: 4 rows
    assert html.FONT_PT >= 9 and html.DPI >= 100


def test_figure_text_is_large_and_titles_do_not_overlap(monkeypatch) -> None:
    figures = []
    monkeypatch.setattr(html, "_png", lambda fig: figures.append(fig) or "")
    labels = [f"model {i} with a rather long name + a sampler {'x' * i}" for i in range(7)]
    rng = np.random.default_rng(0)
    vec = Preview("vector", rng.normal(size=(100, 2)).astype(np.float16), rng.normal(size=(50, 2)).astype(np.float16))
    html.samples_figure([(label, vec) for label in labels])
    curve = [{"step": s, "loss": 1.0 / (s + 1), "kl": 0.1 * s} for s in range(20)]
    html.curves_figure([(label, [curve, curve]) for label in labels])
    models = [(label, float(i + 1)) for i, label in enumerate(labels)]
    html.cost_quality_figure(models, [html.CostPanel(f"{label} ↑", True, [(i + 1, float(i), 0.1, "")])
                                      for i, label in enumerate(labels)])
    for fig in figures:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
        assert texts and min(t.get_fontsize() for t in texts) >= 9
        titles = [(ax, ax.title.get_window_extent(renderer)) for ax in fig.axes]
        for ax, box in titles:
            assert "\n" in ax.title.get_text() or len(ax.title.get_text()) <= html.TITLE_CHARS
            for other, other_box in titles:
                if other is not ax:
                    assert not box.overlaps(other_box) and not box.overlaps(other.bbox), ax.title.get_text()
            assert not box.overlaps(ax.bbox)  # above its own panel


def test_markdown_is_rendered_safely() -> None:
    md = html.markdown_html
    assert md("a `b<c>` **d** *e* _f_ snake_case_name 2 * 3 * 4") == (
        "<p>a <code>b&lt;c&gt;</code> <strong>d</strong> <em>e</em> <em>f</em> snake_case_name 2 * 3 * 4</p>")
    assert md("x\ny\n\n  \nz") == "<p>x\ny</p>\n<p>z</p>"
    assert md("- one\n- `two`") == "<ul><li>one</li><li><code>two</code></li></ul>"
    assert md("[a](https://x.org/?q=1&r=2) [b](index.html) [c](#top)") == (
        '<p><a href="https://x.org/?q=1&amp;r=2">a</a> <a href="index.html">b</a> <a href="#top">c</a></p>')
    assert md("[x](javascript:alert(1)) [y](javascript:void)") == "<p>[x](javascript:alert(1)) [y](javascript:void)</p>"
    assert md('<script>alert("x")</script> & `**not bold**`') == (
        "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; <code>**not bold**</code></p>")
    assert md("[`code` label](a.html)") == '<p><a href="a.html"><code>code</code> label</a></p>'
    assert md("") == ""
    assert html.markdown_inline("`≈`: not different; `(k/n seeds)`") == (
        "<code>≈</code>: not different; <code>(k/n seeds)</code>")


def test_previews_are_stored_after_the_metrics(filled, fake_registry) -> None:
    suite, store, _ = filled
    cells = {c.model.label: c for c in plan(suite, fake_registry)[0] if c.seed == 0}
    good = Preview.from_bytes(store.preview(cells["good"].run_id))
    assert good.kind == "vector"
    assert good.samples.shape == (N_POINTS, 2) and good.samples.dtype == np.float16
    assert good.data.shape == (32, 2)  # the toy test split has 32 points
    assert np.isfinite(good.samples.astype(np.float32)).all()
    # A failing sampler is an illustration lost, not a failed cell: recorded in the provenance.
    shy = store.run(cells["shy"].run_id)
    assert shy["status"] == "ok"
    assert "fake sampling failure" in shy["provenance"]["preview_error"]
    assert store.preview(cells["shy"].run_id) == b""
    assert all(m["status"] == "ok" for m in shy["metrics"] if m["metric"] == "fake_mse")


def test_a_store_without_previews_gets_them_from_the_checkpoints(filled, runner, fake_registry) -> None:
    suite, store, _ = filled
    cell = next(c for c in plan(suite, fake_registry)[0] if c.model.label == "good")
    before = store.preview(cell.run_id)
    metrics_before = store.run(cell.run_id)["metrics"]
    with sqlite3.connect(store.path) as db:  # as a store written before previews existed
        db.execute("DELETE FROM previews")
    summary, _ = runner(suite)
    outcome = {o.run_id: o for o in summary.outcomes}[cell.run_id]
    assert outcome.status == "evaluated"
    assert store.preview(cell.run_id) == before  # the same seed, the same restored model
    assert store.run(cell.run_id)["metrics"] == metrics_before
    summary, _ = runner(suite)  # nothing left to do: no checkpoint is loaded again
    assert {o.status for o in summary.outcomes} == {"skipped"}


def _bundle(kind: str, shape: tuple[int, ...]) -> DataBundle:
    x = torch.rand(50, *shape)
    split = Split(x, None)
    return DataBundle(info=DatasetInfo(name="t", shape=shape, kind=kind), train=split, val=split, test=split)


class _Sampler:
    capabilities = frozenset({"sample"})

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def sample(self, n: int) -> torch.Tensor:
        out = torch.rand(n, *self.shape)
        out[0] = float("nan")  # a blown-up sample still previews
        return out


def test_image_previews_tile_into_a_grid() -> None:
    data = _bundle("image", (3, 5, 4))
    p = make_preview(_Sampler((3, 5, 4)), data)
    assert p.samples.shape == (36, 3, 5, 4) and p.data.shape == (36, 3, 5, 4)
    assert np.isfinite(p.samples.astype(np.float32)).all()
    mosaic = html.tile(p.samples, 0.0, 1.0)
    assert mosaic.shape == (6 * 6 - 1, 6 * 5 - 1, 3)  # 1-pixel gaps between tiles
    np.testing.assert_allclose(mosaic[6:11, 0:4], p.samples[6].astype(np.float32).transpose(1, 2, 0))
    assert (mosaic[5] == 0.5).all() and (mosaic[:, 4] == 0.5).all()
    grey = html.tile(np.zeros((5, 1, 2, 2), np.float16), 0.0, 1.0, gap=0)
    assert grey.shape == (2 * 2, 3 * 2)  # 5 tiles: 2 rows of 3, the unused tile white
    assert (grey[2:, 4:] == 1.0).all() and (grey[:2] == 0.0).all()
    check_png(html.samples_figure([("m", Preview.from_bytes(p.to_bytes()))]))


def test_no_preview_for_a_model_that_cannot_sample() -> None:
    class Encoder:
        capabilities = frozenset({"infer"})

    assert make_preview(Encoder(), _bundle("vector", (2,))) is None


def test_curve_limits_skip_the_initial_spike() -> None:
    points = [{"step": float(s), "loss": 100.0 if s == 0 else 1.0 + s / 100} for s in range(100)]
    lo, hi = html.curve_limits(points, ["loss"])
    assert lo < 1.1 and 1.99 < hi < 2.2
    assert html.curve_limits([{"step": 0.0, "loss": float("nan")}], ["loss"]) is None


def test_count_outside_the_data_view() -> None:
    pts = np.array([[0.0, 0.0], [2.5, 0.0], [0.0, -3.0], [1.9, 1.9]])
    assert html.count_outside(pts, np.zeros(2), np.full(2, 2.0)) == 2


# A minimal DOM stand-in (one table: a label column, a higher-is-better and a lower-is-better value
# column) to run the page's sort script.
_HARNESS = """
function classList() { const s = new Set(); return { add: (...a) => a.forEach(x => s.add(x)),
  remove: (...a) => a.forEach(x => s.delete(x)), contains: x => s.has(x) }; }
const data = [["a", "0.5"], ["b", "n/a [1]"], ["c", "-2"], ["d", ""], ["e", "10"], ["f", "failed [2]"]];
const rows = data.map(([m, v]) => ({ label: m, cells: [m, v, v].map(x => ({ getAttribute: () => x })) }));
const body = { rows: rows.slice(), appendChild(r) { this.rows = this.rows.filter(x => x !== r); this.rows.push(r); } };
const ths = [null, "high", "low"].map(better => ({ classList: classList(), listeners: [],
  getAttribute: name => (name === "data-better" ? better : null),
  addEventListener(e, f) { this.listeners.push(f); } }));
globalThis.document = { querySelectorAll: () => [{ querySelectorAll: () => ths, tBodies: [body] }] };
eval(SCRIPT);
const order = () => body.rows.map(r => r.label).join("");
const out = [];
for (const col of [1, 1, 2, 2, 0, 0, 1]) { ths[col].listeners[0](); out.push(order()); }
console.log(out.join(" "));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_sort_script_sorts_toward_better_first(tmp_path) -> None:
    script = re.search(r"<script>(.*)</script>", html.page("t", [], [], []), re.S).group(1)
    harness = tmp_path / "harness.js"
    harness.write_text(f"const SCRIPT = {json.dumps(script)};\n{_HARNESS}")
    out = subprocess.run(["node", str(harness)], capture_output=True, text=True, check=True).stdout.split()
    # ↑ column: descending first (numbers reversed; text, then empty cells, still below), then ascending;
    # ↓ column: ascending first; the label column: ascending, then descending; back on ↑: descending again.
    # "failed [2]" < "n/a [1]" as text.
    assert out == ["eacbfd", "caefbd", "caefbd", "eacbfd", "abcdef", "fedcba", "eacbfd"]
