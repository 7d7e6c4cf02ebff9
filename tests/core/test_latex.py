"""LaTeX tables (``table.tex``): split to fit a default article page, marks, notes inside the floats, and
a pdflatex build without overfull boxes."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from benchbed import tables
from benchbed.latex import _TEX_ESCAPES, WIDTH_BUDGET_PT, estimated_widths, tex_escape, to_latex
from benchbed.tables import (
    COST_COLUMNS,
    HYPERPARAMETERS,
    PARAMETER_COUNT,
    SEEDS,
    STEPS,
    TRAIN_SECONDS,
    Column,
    DatasetTable,
    Leaderboard,
    Notes,
    Row,
    TableCell,
)

HEADER = 'name = "lx"\nseeds = [0, 1]\n[budget]\nsteps = 24\nbatch_size = 16\n[datasets.toy]\n'

BODY = """
[models.fast]
component = "linear"
lr = 0.05
[models.slow]
component = "linear"
lr = 0.002
[metrics.fake_mse]
[metrics.fake_ll]
[metrics.fake_na]
[metrics.fake_ref]
"""

WRAPPER = r"\documentclass{article}\usepackage{booktabs}\begin{document}\input{table}\end{document}"

needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")


@pytest.fixture
def board(make_suite, runner, fake_registry) -> Leaderboard:
    """A real tiny run: two models, a reference row (fake_ref), two metrics n/a for every model."""
    suite = make_suite(BODY, header=HEADER)
    _, store = runner(suite)
    return tables.build(store, suite, fake_registry)


def _floats(tex: str) -> list[str]:
    return re.findall(r"\\begin\{table\}.*?\\end\{table\}", tex, flags=re.S)


def _compile(tmp_path: Path, tex: str) -> str:
    """pdflatex on the wrapper document; returns the log (the build must succeed)."""
    folder = tmp_path / "tex"
    folder.mkdir()
    (folder / "table.tex").write_text(tex, encoding="ascii")
    (folder / "doc.tex").write_text(WRAPPER + "\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    log = (folder / "doc.log").read_text(encoding="latin-1")
    assert proc.returncode == 0, log[-3000:]
    return log


def _synthetic(suite, n_metrics: int = 16, n_rows: int = 13) -> Leaderboard:
    """A wide leaderboard built from the dataclasses: many metrics, long labels and tags, every mark,
    notes with long file names and characters LaTeX must not see raw."""
    titles = ["Recon MSE", "MMD²", "FD-raw", "FD-domain", "log-lik (nats)", "bits/dim", "Outlier AUROC",
              "Outlier AUPRC", "Accuracy", "log Ẑ error", "ELBO — gap", "√n-scaled α-divergence"]
    columns = [Column(f"m{i}", titles[i % len(titles)] + ("" if i < len(titles) else f" {i}"), i % 3 != 0,
                      True, f"comp{i}") for i in range(n_metrics)]
    labels = ["vae", "hlebm_var + langevin", "logistic regression (100 labels), a reference row with a long name",
              "a_model_label_without_any_spaces_that_goes_on_and_on + short_run", "jgmmn_noreg", "café + Métropolis"]
    long_reason = ("FID needs pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth, from the "
                   "releases), never downloaded: set $BENCHBED_FID_WEIGHTS_AND_A_VERY_LONG_VARIABLE_NAME to the "
                   "file; 100% of rows & #seeds {x} ~ y^2 \\ <a> | b ≈ c — d")
    rows = []
    for j in range(n_rows):
        label = labels[j % len(labels)] + ("" if j < len(labels) else f" {j}")
        row = Row(label, "reference" if j == 2 else "model")
        for i, col in enumerate(columns):
            if j == 2 and i:
                continue  # a reference row has a value in the first column only
            if (i + j) % 7 == 3:
                row.cells[col.key] = TableCell(status="n/a", reasons=[long_reason if i % 2 else "model lacks sample"])
                continue
            cell = TableCell(status="ok", value=f"-{j + 1}.{i:02d}34 ± 0.0{i % 9 + 1}7", mean=-(j + 1.0), se=0.01,
                             n_ok=2, n=2, estimator="importance-weighted lower bound" if j % 2 else "Parzen",
                             show_estimator=i % 4 == 0)
            if i % 5 == 1 and j == 4:
                cell.n_ok, cell.reasons = 1, ["seed 1 diverged at step 12 (loss nan)"]
            cell.best, cell.tie = (j == 1 and i % 2 == 0), (j == 3 and i % 2 == 0)
            row.cells[col.key] = cell
        if row.kind == "model":
            row.cells[HYPERPARAMETERS] = TableCell(value="reg_weight=1.0, lr=0.0001, latent_dims=[8, 16, 32], "
                                                   f"scheme=variational_with_a_long_name_{j}")
            row.cells[TRAIN_SECONDS] = TableCell(value="1234.5")
            row.cells[STEPS] = TableCell(value="400")
            row.cells[PARAMETER_COUNT] = TableCell(value="1,234,567")
            row.cells[SEEDS] = TableCell(value="2/2")
        rows.append(row)
    cost = [Column(k, k, None, metric=False) for k in COST_COLUMNS]
    omitted = [(Column("fid", "FID", False), long_reason)]
    wide = DatasetTable("digits_with_a_long_name", [*columns, *cost], rows, omitted, {"m1": "exact"})
    small = DatasetTable("gmm8", [*columns[:2], *cost[1:]], [dataclasses.replace(r) for r in rows[:3]])
    legends = {"m0": {"Parzen": "Gaussian kernel density fitted to samples: not a bound",
                      "importance-weighted lower bound": "IWAE with the model's encoder"}, "m1": {"exact": "exact"}}
    return Leaderboard(dataclasses.replace(suite, name="wide_suite"), [wide, small], Notes(), legends)


# -- structure ------------------------------------------------------------------------------------


def test_booktabs_marks_notes_and_widths(board) -> None:
    tex = to_latex(board)
    floats = _floats(tex)
    assert len(floats) >= 2  # metrics and cost columns in separate tables
    assert tex.isascii() and "\\hline" not in tex
    assert not any(line.startswith("%") for line in tex[tex.index("\\begin{table}"):].splitlines())
    (table,) = board.tables
    for f in floats:
        assert f.count("\\toprule") == f.count("\\bottomrule") == 1 and "\\midrule" in f
        assert re.search(r"\\toprule\nmodel & ", f)  # the model column in every part
        tabular_end, notes = f.index("\\end{tabular}"), f.index("\\begin{minipage}")
        assert tabular_end < notes < f.index("\\end{minipage}") < f.index("\\end{table}")
        assert "$\\pm$ standard error" in f or "parameter count" in f  # the conventions line
    # the best MSE in bold; cost columns apart from the metrics
    (best,) = table.best("fake_mse")
    mse = next(f for f in floats if "MSE $\\downarrow$" in f)
    assert re.search(re.escape(tex_escape(best)) + r" & \\textbf\{[^{}]+ \$\\pm\$ [^{}]+\}", mse)
    assert "parameter count" not in mse and "train s" in tex
    # columns n/a for every model are absent, and said so in a note inside the first table
    assert [c.key for c, _ in table.omitted] == ["fake_ll", "fake_na"]
    assert "fake\\_ll $\\" not in tex and "fake\\_na $\\" not in tex
    assert "]~Column fake\\_ll omitted for toy: n/a for every model" in floats[0]
    assert "]~Column fake\\_na omitted for toy" in floats[0]
    assert "omitted" not in "".join(floats[1:])
    # fits the page by the estimate, unique labels, no machine paths, deterministic
    assert all(w <= WIDTH_BUDGET_PT for w in estimated_widths(board))
    labels = re.findall(r"\\label\{([^}]*)\}", tex)
    assert len(labels) == len(set(labels)) == len(floats)
    assert str(Path.home()) not in tex and "/tmp" not in tex
    assert to_latex(board) == tex


def test_wide_board_is_split_with_own_notes(make_suite) -> None:
    board = _synthetic(make_suite(BODY, header=HEADER))
    tex = to_latex(board)
    floats = _floats(tex)
    widths = estimated_widths(board)
    assert len(widths) == len(floats) >= 6 and max(widths) <= WIDTH_BUDGET_PT
    wide = [f for f in floats if "digits\\_" in f]
    assert "(part 1 of " in wide[0] and "Recon MSE" in wide[0].split("\\label")[0]
    # every metric column once, in order; the cost columns after them, in tables of their own
    captions, at = "".join(re.findall(r"\\caption\{(.*)\}", "\n".join(wide))), 0
    for col in board.tables[0].metric_columns:
        at = captions.index(tex_escape(col.title), at) + 1
    assert "cost and settings" in wide[-1] and "parameter count" in wide[-1]
    assert not any("parameter count" in f for f in wide if "metric" in f.split("\\label")[0])
    # marks: bold best, ties with \approx after the value
    assert "\\textbf{$-$2.0034 $\\pm$ 0.017}" in tex
    assert "$-$4.0234 $\\pm$ 0.037 $\\approx$" in tex
    # each part numbers its notes from 1; the omitted column only in the first part of its data set
    for f in floats:
        numbers = [int(n) for n in re.findall(r"^\[(\d+)\]~", f, flags=re.M)]
        assert numbers == list(range(1, len(numbers) + 1))
        used = {int(n) for n in re.findall(r"\[(\d+)\](?!~)", f.split("\\begin{minipage}")[0])}
        assert used <= set(numbers)
    assert "Column FID omitted" in wide[0] and not any("Column FID omitted" in f for f in floats[1:])
    assert "m1" not in tex and "every value is exact" in tex  # uniform tag legend, by title
    assert tex.isascii() and to_latex(board) == tex


def test_tex_escape_maps_everything_to_ascii() -> None:
    text = "≈ √n α Ẑ — – é ü ç ñ 中 ℓ ± ² × ↑ ↓ · $ _ % & # { } ~ ^ \\ < > | ' ` ’ “x” … ΩΣ µ"
    out = tex_escape(text)
    assert out.isascii() and "中" not in out
    for piece in ("$\\approx$", "$\\surd$n", "$\\alpha$", "$\\hat{Z}$", "---", "--", "\\'{e}", '\\"{u}', "\\c{c}",
                  "\\~{n}", "$\\ell$", "$\\pm$", "$^2$", "$\\times$", "$\\uparrow$", "$\\downarrow$", "$\\cdot$",
                  "$\\$$", "\\_", "\\%", "\\&", "\\#", "\\{", "\\}", "\\textasciitilde{}", "\\textasciicircum{}",
                  "\\textbackslash{}", "\\textless{}", "\\textgreater{}", "\\textbar{}", "$\\Omega$$\\Sigma$",
                  "$\\mu$"):
        assert piece in out, piece
    assert tex_escape("a--b") == "a-{}-b" and tex_escape("''") == "'{}'"
    long = tex_escape("pt_inception-2015-12-05-6726825d.pth", breakable=True)
    assert "\\penalty" in long and tex_escape("short_word", breakable=True) == "short\\_word"


# -- pdflatex -------------------------------------------------------------------------------------


def _overfull(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(("Overfull", "Underfull"))]


@needs_pdflatex
def test_wide_board_compiles_without_overfull_boxes(make_suite, tmp_path) -> None:
    """16 metric columns with long labels, tags and notes: one table would be far wider than the page."""
    board = _synthetic(make_suite(BODY, header=HEADER))
    log = _compile(tmp_path, to_latex(board))
    assert _overfull(log) == []
    assert "ts1cmr.fd" not in log  # no text-companion (bitmap) font
    assert "Float too large" not in log and "Missing character" not in log


@needs_pdflatex
def test_every_mapped_character_compiles(tmp_path) -> None:
    text = "".join(sorted(_TEX_ESCAPES)) + " àéîõüçñÅČőẐ ǅ ﬁ ⁴ 中 \x07"
    log = _compile(tmp_path, tex_escape(text) + r"\par\textbf{" + tex_escape(text, breakable=True) + "}\\par\n")
    assert "ts1cmr.fd" not in log and "Missing character" not in log


@needs_pdflatex
def test_run_compiles_without_overfull_boxes(board, tmp_path) -> None:
    log = _compile(tmp_path, to_latex(board))
    assert _overfull(log) == [] and "ts1cmr.fd" not in log
