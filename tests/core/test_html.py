"""The HTML leaderboard page and the sample previews it shows, from real (tiny) runs of the fake plugin."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from benchbed import html, leaderboard
from benchbed.contracts import DataBundle, DatasetInfo, Split
from benchbed.grid import plan
from benchbed.preview import N_POINTS, Preview, make_preview

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
    """Collects tables (rows of (text, data-sort) cells), images and tag balance."""

    VOID = {"meta", "img", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tables: list[list[list[tuple[str, str | None]]]] = []
        self.images: list[str] = []
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
        elif tag == "img":
            self.images.append(a["src"])
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
    suite = make_suite(BODY)
    summary, store = runner(suite)
    return suite, store, summary


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    assert page.stack == [], page.stack
    return page


def test_sort_key_reads_the_leading_number() -> None:
    assert html.sort_key("0.1653 ± 0.0018") == "0.1653"
    assert html.sort_key("-3.311 ± 3.5 (1/2 seeds) [2]") == "-3.311"
    assert html.sort_key("1.5e-05") == "1.5e-05"
    assert html.sort_key("44,290") == "44290"
    assert html.sort_key("n/a [1]") == "n/a [1]"
    assert html.sort_key("") == ""


def test_table_escapes_labels_and_marks_the_best() -> None:
    text = html.table_html([("<x>&", ["1.5", "a"]), ("y", ["2", "<b>"])], ["m ↓", "params"], {"m ↓": "<x>&"}, {"y"})
    page = parse(text)
    (table,) = page.tables
    assert table[1][0] == ("<x>&", "<x>&")
    assert table[2][2] == ("<b>", "<b>")  # text, not markup
    assert page.bold == ["1.5"]
    assert '<tr class="reference">' in text


def test_page_has_sortable_tables_figures_and_notes(filled, fake_registry) -> None:
    suite, store, _ = filled
    tables, notes = leaderboard.build_tables(store, suite, fake_registry)
    text = leaderboard.render("html", store, suite, tables, notes)
    page = parse(text)
    (table,) = page.tables
    header = [c for c, _ in table[0]]
    assert header[0] == "model" and "MSE ↓" in header
    rows = {r[0][0]: r for r in table[1:]}
    assert {"good", "shy"} <= set(rows)
    mse = header.index("MSE ↓")
    for label in ("good", "shy"):
        text_cell, key = rows[label][mse]
        assert float(key) == pytest.approx(float(text_cell.split()[0]))  # sorts by the mean
    # samples (only "good" can draw them) and training curves, as embedded PNGs
    assert len(page.images) == 2
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert "Samples" in text and "Training curves" in text
    assert "<script>" in text and "sortable" in text


def test_previews_are_stored_after_the_metrics(filled, fake_registry) -> None:
    suite, store, _ = filled
    cells = {c.model.label: c for c in plan(suite, fake_registry)[0]}
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
    src = html.samples_figure([("m", Preview.from_bytes(p.to_bytes()))])
    assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)


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


# A minimal DOM stand-in (one table, a text column and a value column) to run the page's sort script.
_HARNESS = """
function classList() { const s = new Set(); return { add: (...a) => a.forEach(x => s.add(x)),
  remove: (...a) => a.forEach(x => s.delete(x)), contains: x => s.has(x) }; }
const data = [["a", "0.5"], ["b", "n/a [1]"], ["c", "-2"], ["d", ""], ["e", "10"], ["f", "failed [2]"]];
const rows = data.map(([m, v]) => ({ label: m, cells: [{ getAttribute: () => m }, { getAttribute: () => v }] }));
const body = { rows: rows.slice(), appendChild(r) { this.rows = this.rows.filter(x => x !== r); this.rows.push(r); } };
const ths = [0, 1].map(() => ({ classList: classList(), listeners: [],
  addEventListener(e, f) { this.listeners.push(f); } }));
globalThis.document = { querySelectorAll: () => [{ querySelectorAll: () => ths, tBodies: [body] }] };
eval(SCRIPT);
const order = () => body.rows.map(r => r.label).join("");
const out = [];
ths[1].listeners[0](); out.push(order());
ths[1].listeners[0](); out.push(order());
ths[0].listeners[0](); out.push(order());
console.log(out.join(" "));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_sort_script_orders_numbers_then_text_then_empty(tmp_path) -> None:
    script = re.search(r"<script>(.*)</script>", html.page("t", [], [], []), re.S).group(1)
    harness = tmp_path / "harness.js"
    harness.write_text(f"const SCRIPT = {json.dumps(script)};\n{_HARNESS}")
    out = subprocess.run(["node", str(harness)], capture_output=True, text=True, check=True).stdout.split()
    # ascending, descending (numbers reversed, text and empty cells still below), then by the label column
    assert out == ["caefbd", "eacbfd", "abcdef"]  # "failed [2]" < "n/a [1]" as text
