"""The HTML leaderboard page in a real browser (headless Chromium, skipped where it is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchbed import html
from benchbed.preview import Preview
from benchbed.tables import Column, DatasetTable, Notes, Row, TableCell

CHROMIUM = shutil.which("chromium")

# Appended to the page: measures the layout into the title, which --dump-dom prints.
_MEASURE = """<script>
var box = document.querySelector(".scroll"), img = document.querySelector("img");
document.title = JSON.stringify({page: document.documentElement.scrollWidth, box: box.scrollWidth,
  boxWidth: box.clientWidth, body: document.body.clientWidth, img: img.getBoundingClientRect().width,
  natural: img.naturalWidth});
</script>"""


def wide_page() -> str:
    columns = [Column(f"metric_{i}", f"a long metric title {i}", i % 2 == 0) for i in range(24)]
    rows = [Row(f"model {r} + sampler with a long name", "model",
                {c.key: TableCell(status="ok", value=f"{r * 1000.123456:.6f} ± 0.000123 (estimator tag)", mean=r)
                 for c in columns}) for r in range(13)]
    notes = Notes()
    table = html.table_html(DatasetTable("wide", columns, rows), notes)
    rng = np.random.default_rng(0)
    x = rng.random((36, 1, 8, 8)).astype(np.float16)
    figure = html.figure_html(html.samples_figure([(f"model {i}", Preview("image", x, x)) for i in range(13)]),
                              "samples", "caption")
    long_token = "x" * 400  # an unbreakable word in prose and notes must not widen the page
    return html.page("wide", [f"A `description` with {long_token}."], [("wide", table + figure)],
                     [f"a note {long_token}", *notes.items])


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_wide_tables_scroll_in_their_box_not_the_page(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(wide_page().replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,800", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000",
         "--run-all-compositor-stages-before-draw", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60, check=True).stdout
    title = re.search(r"<title>(.*?)</title>", out, re.S).group(1).replace("&quot;", '"')
    m = json.loads(title)
    assert m["page"] <= 1280, m  # no horizontal page scroll at 1280 px
    assert m["box"] > m["boxWidth"] >= 1100, m  # the table is wider than its box, which scrolls
    assert m["body"] <= 1200, m
    assert m["img"] == m["natural"] <= m["body"], m  # the figure shows at its natural size
