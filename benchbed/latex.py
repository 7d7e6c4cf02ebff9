"""LaTeX tables for papers (booktabs): split to fit an ``article`` page, with real table notes.

:func:`to_latex` writes one or more ``table`` floats per data set for a default ``\\documentclass{article}``
(10pt, ``\\textwidth`` = 345pt) with ``\\usepackage{booktabs}`` and no other package:

* the metric columns are split greedily, then evened out, into parts whose estimated width fits the text
  width; the cost and identification columns (:data:`benchbed.tables.COST_COLUMNS`) get their own
  part(s); the model column is repeated in every part, and rows are split too where a part would not fit
  the page height;
* widths are estimated from Computer Modern character widths at the table's font size, on the wide side;
  a cell that is too wide even alone (long labels, hyperparameters, tags) is set in a ragged ``\\parbox``
  where its long words may break;
* the best entry of a column is bold, entries not significantly different from it carry ``$\\approx$``;
* every part numbers its own notes from 1 (the cells' ``[n]`` markers), adds the legend notes of its
  columns (:func:`benchbed.leaderboard.legend_notes`; omitted columns in the first part of a data set)
  and one line on the conventions, in a ``minipage`` under the tabular, inside the float;
* every character that is not ASCII is mapped to LaTeX (or dropped), so pdflatex never stops on the
  input encoding; the output is deterministic.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field, replace

from benchbed.leaderboard import legend_notes
from benchbed.stats import ALPHA, TEST_NAME
from benchbed.tables import (
    COST_MEANINGS,
    HYPERPARAMETERS,
    Column,
    DatasetTable,
    Leaderboard,
    Notes,
    Row,
    TableCell,
)

# -- escaping -------------------------------------------------------------------------------------

#: Characters LaTeX must not see raw, and every non-ASCII character benchbed's texts use.  Text-mode
#: \$, \S, \P, \pounds and \copyright would load the TS1 encoding (a bitmap font without cm-super):
#: they are set in math mode or spelled out.
_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"$\$$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
                "\n": " ", "\r": " ", "\t": " ", "\u00a0": "~",
                "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "·": r"$\cdot$", "²": r"$^2$",
                "³": r"$^3$", "¹": r"$^1$", "×": r"$\times$", "≈": r"$\approx$", "√": r"$\surd$",
                "Ẑ": r"$\hat{Z}$", "ẑ": r"$\hat{z}$", "—": "---", "–": "--", "−": "$-$", "‘": "`", "’": "'",
                "“": "``", "”": "''", "…": r"\dots{}", "≤": r"$\leq$", "≥": r"$\geq$", "≠": r"$\neq$",
                "∞": r"$\infty$", "→": r"$\rightarrow$", "←": r"$\leftarrow$", "↔": r"$\leftrightarrow$",
                "⇒": r"$\Rightarrow$", "°": r"$^\circ$", "µ": r"$\mu$", "∈": r"$\in$", "∑": r"$\sum$",
                "∏": r"$\prod$", "∂": r"$\partial$", "∇": r"$\nabla$", "•": r"$\bullet$", "∼": r"$\sim$",
                "∝": r"$\propto$", "⊂": r"$\subset$", "∪": r"$\cup$", "∩": r"$\cap$", "ℓ": r"$\ell$",
                "§": r"$\S$", "¶": r"$\P$", "©": "(c)", "£": r"$\mathsterling$", "ß": r"\ss{}",
                "æ": r"\ae{}", "Æ": r"\AE{}", "ø": r"\o{}", "Ø": r"\O{}", "œ": r"\oe{}", "Œ": r"\OE{}",
                "ł": r"\l{}", "Ł": r"\L{}", "ı": r"\i{}", "ȷ": r"\j{}", "¡": r"!`", "¿": r"?`"}
_GREEK = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi o pi rho sigma sigma tau "
          "upsilon phi chi psi omega").split()
for _i, _name in enumerate(_GREEK):
    _TEX_ESCAPES[chr(0x3B1 + _i)] = "o" if _name == "o" else f"$\\{_name}$"
for _ch, _name in zip("ΓΔΘΛΞΠΣΥΦΨΩ", "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split(), strict=True):
    _TEX_ESCAPES[_ch] = f"$\\{_name}$"
#: Combining marks that OT1 (the default font encoding) can set as text accents.
_ACCENTS = {"\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u",
            "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0327": "c"}
#: Where a long word (file name, tag, path-like setting) may break in a note, caption or narrow cell.
_BREAK_AFTER = set("_/=.,:;)]}+")
_LONG_WORD = 16  # words at least this long get break points
_BREAK_EVERY_EM = 6.0  # ... and one at least every so many em of text without one
_BREAK = r"\penalty50{}"  # a legal line break, a little worse than a space


def _char(ch: str) -> str:
    """One character as LaTeX text (OT1, no package); '' for what cannot be set."""
    if ch in _TEX_ESCAPES:
        return _TEX_ESCAPES[ch]
    if ch.isascii():
        return ch if ch.isprintable() else ""
    decomposed = unicodedata.normalize("NFD", ch)
    base, marks = decomposed[0], decomposed[1:]
    if base.isascii() and base.isalpha() and marks and all(m in _ACCENTS for m in marks):
        out = {"i": r"\i", "j": r"\j"}.get(base, base)
        for m in marks:
            out = f"\\{_ACCENTS[m]}{{{out}}}"
        return out
    compat = unicodedata.normalize("NFKD", ch)
    if compat != ch and all(c.isascii() or c in _TEX_ESCAPES for c in compat):
        return "".join(_char(c) for c in compat if not unicodedata.combining(c))
    if marks and base.isascii():  # an accent OT1 lacks: the bare letter
        return _char(base)
    return ""


def tex_escape(text: str, breakable: bool = False) -> str:
    """``text`` as LaTeX text: specials escaped, every non-ASCII character mapped (or dropped), no
    TeX ligature formed across characters (``--``, ``''``, ``!```).  ``breakable``: long words get
    legal line breaks after punctuation and at least every few characters (for ragged paragraphs)."""
    s = str(text)
    out: list[str] = []
    long_word = [False] * len(s)
    if breakable:
        for m in re.finditer(r"\S+", s):
            if m.end() - m.start() >= _LONG_WORD:
                long_word[m.start():m.end()] = [True] * (m.end() - m.start())
    run = 0.0  # width since the last possible break
    for i, ch in enumerate(s):
        out.append(_char(ch))
        nxt = s[i + 1] if i + 1 < len(s) else ""
        if (ch == "-" and nxt == "-") or (ch in "`'" and nxt and nxt in "`'") or (ch in "!?" and nxt == "`"):
            out.append("{}")
        run += text_width_em(ch)
        if long_word[i] and nxt and not nxt.isspace() and (ch in _BREAK_AFTER or run >= _BREAK_EVERY_EM):
            out.append(_BREAK)
            run = 0.0
        elif ch.isspace() or ch == "-":
            run = 0.0
    return "".join(out)


# -- width and height estimates -------------------------------------------------------------------

TEXTWIDTH_PT = 345.0  # \textwidth of a default (10pt) article
TEXTHEIGHT_PT = 550.0  # \textheight of the same
FONT_PT = 9.0  # \small: the tables
LINE_PT = 11.0  # its \baselineskip (one line of a cell)
NOTE_FONT_PT = 8.0  # \footnotesize: the notes
NOTE_LINE_PT = 9.5
TABCOLSEP_PT = 5.0  # set in every table (LaTeX's default is 6pt)
SAFETY = 1.08  # estimates err on the wide side
BOLD = 1.15  # bold extended (cmbx) over roman (cmr)
WIDTH_BUDGET_PT = TEXTWIDTH_PT - 1.0
HEIGHT_BUDGET_PT = TEXTHEIGHT_PT  # the estimates below are already high (10-20% for real tables)
LABEL_CAP_PT = 0.3 * TEXTWIDTH_PT  # longer model labels wrap
TEXT_CAP_PT = 0.35 * TEXTWIDTH_PT  # longer hyperparameter lists wrap
MIN_TEXT_PT = 60.0  # ... but not narrower than this to fit the other cost columns beside them
HEADER_SAVING_PT = 10.0  # a header takes another line only where that narrows its column this much

#: Character widths of cmr10 in em (from its metrics, rounded up); math symbols as set by tex_escape.
_EM: dict[str, float] = {c: 0.5 for c in "0123456789"}
_EM.update(zip("abcdefghijklmnopqrstuvwxyz",
               [.5, .556, .444, .556, .444, .306, .5, .556, .278, .306, .528, .278, .833, .556, .5, .556, .528,
                .392, .394, .389, .556, .528, .722, .528, .528, .444], strict=True))
_EM.update(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
               [.75, .708, .722, .764, .681, .653, .785, .75, .361, .514, .778, .625, .917, .75, .778, .681,
                .778, .736, .556, .722, .75, .75, 1.028, .75, .75, .611], strict=True))
_EM.update({" ": .333, ".": .278, ",": .278, ":": .278, ";": .278, "(": .389, ")": .389, "[": .278, "]": .278,
            "-": .333, "+": .778, "=": .778, "/": .5, "_": .5, "%": .833, "'": .278, '"': .5, "!": .278,
            "?": .472, "&": .778, "#": .833, "*": .5, "<": .778, ">": .778, "~": .5, "^": .5, "|": .5, "{": .5,
            "}": .5, "$": .5, "@": .778, "\\": .5, "`": .278, "±": .778, "≈": .778, "×": .778, "↑": .5,
            "↓": .5, "·": .278, "²": .4, "³": .4, "¹": .4, "√": .833, "—": 1.0, "–": .5, "−": .778})


def text_width_em(text: str) -> float:
    """Estimated width of ``text`` in em of the roman font (unknown characters: 1em)."""
    return sum(_EM.get(c, 0.5 if c.isascii() else 1.0) for c in str(text))


def _pt(text: str, size: float = FONT_PT, bold: bool = False) -> float:
    return text_width_em(text) * size * SAFETY * (BOLD if bold else 1.0)


def _lines_needed(text: str, width: float, size: float, fill: float = 0.85) -> int:
    """Lines of a ragged paragraph: a line breaks at a space or after punctuation, so it is not full
    (``fill``: how full a line is at least, on average; narrow paragraphs waste more)."""
    return max(1, math.ceil(_pt(text, size) / max(fill * width, 1.0)))


# -- the parts of a data set's table --------------------------------------------------------------


@dataclass
class _Cell:
    """One cell as display lines (raw text): the value with its marks, then its tag, seeds and notes."""

    lines: list[str] = field(default_factory=list)
    best: bool = False
    tie: bool = False

    def widths(self) -> list[float]:
        out = []
        for i, line in enumerate(self.lines):
            w = _pt(line, bold=i == 0 and self.best)
            if i == 0 and self.tie:
                w += _pt(" ≈")
            out.append(w)
        return out

    @property
    def width(self) -> float:
        return max(self.widths(), default=0.0)


_MINUS = re.compile(r"(?<![\w.)])-(?=\.?\d)")  # a hyphen that is the sign of a number


def _cell(cell: TableCell, notes: Notes) -> _Cell:
    """Split a cell's display text into the value (first line) and what qualifies it (second line)."""
    text = cell.text(notes)
    if not text:
        return _Cell()
    ok = cell.status == "ok"
    if ok and cell.value and text.startswith(cell.value) and len(text) > len(cell.value):
        lines = [cell.value, text[len(cell.value):].strip()]
    else:
        lines = [text]
    lines = [_MINUS.sub("−", line) for line in lines]  # a minus sign, not a hyphen, before a number
    return _Cell(lines, ok and cell.best, ok and cell.tie and not cell.best)


class _WidestNotes(Notes):
    """Note numbers for width estimates: every marker as wide as the largest number a part can use."""

    def __init__(self, widest: int) -> None:
        super().__init__()
        self.widest = widest

    def ref(self, text: str) -> int:
        return self.widest


@dataclass
class _Layout:
    """A column's estimated width, header lines and the width beyond which its cells wrap."""

    column: Column | None  # None: the model column
    align: str
    header: list[str]
    width: float
    cap: float  # cells wider than this are set in a ragged \parbox of this width


def _split_header(words: list[str], target: float) -> list[str]:
    """The header in the fewest lines (at most 3) that fit ``target``; more lines only where they save
    at least :data:`HEADER_SAVING_PT` and no line is a stub of one or two characters."""
    options: list[tuple[float, list[str]]] = []
    for n in range(1, min(3, len(words)) + 1):
        best: tuple[float, list[str]] | None = None
        for cuts in _combinations(len(words) - 1, n - 1):
            bounds = [0, *(c + 1 for c in cuts), len(words)]
            lines = [" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
            if n > 1 and min(len(line) for line in lines) < 3:
                continue
            w = max(_pt(line) for line in lines)
            if best is None or w < best[0] - 1e-9:
                best = (w, lines)
        if best is not None:
            options.append(best)
    chosen = options[0]
    for option in options[1:]:
        if chosen[0] <= target:
            break
        if option[0] <= chosen[0] - HEADER_SAVING_PT:
            chosen = option
    return chosen[1]


def _combinations(n: int, k: int) -> list[tuple[int, ...]]:
    """Increasing ``k``-tuples from ``range(n)``, in lexicographic order."""
    if k == 0:
        return [()]
    return [(i, *rest) for i in range(n) for rest in _combinations(n, k - 1) if not rest or rest[0] > i]


def _header_words(col: Column) -> list[str]:
    words = col.title.split() or [col.title]
    if col.higher_is_better is not None:
        words[-1] += " ↑" if col.higher_is_better else " ↓"
    return words


def _partition(sizes: list[float], budget: float, base: float = 0.0) -> list[list[int]]:
    """Contiguous groups of ``sizes``: as few as fit ``base + sum <= budget`` (an item too large alone
    is a group of its own), then as even as possible (least sum of squared group sizes)."""
    n = len(sizes)
    if n == 0:
        return []
    k, total = 1, base
    for i, s in enumerate(sizes):
        if i and total + s > budget + 1e-9:
            k, total = k + 1, base
        total += s

    prefix = [0.0]
    for s in sizes:
        prefix.append(prefix[-1] + s)

    def cost(a: int, b: int) -> float:
        w = base + prefix[b] - prefix[a]
        return w * w if w <= budget + 1e-9 or b - a == 1 else math.inf

    # best[j][i]: least cost of the first i items in j groups; cut[j][i]: where the last group starts
    best = [[math.inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for j in range(1, k + 1):
        for i in range(j, n + 1):
            for a in range(j - 1, i):
                c = best[j - 1][a] + cost(a, i)
                if c < best[j][i] - 1e-9:
                    best[j][i], cut[j][i] = c, a
    groups, i = [], n
    for j in range(k, 0, -1):
        a = cut[j][i]
        groups.append(list(range(a, i)))
        i = a
    return groups[::-1]


@dataclass
class _Part:
    table: DatasetTable
    columns: list[Column]
    rows: list[Row]
    layouts: list[_Layout]  # model column first
    metric: bool
    row_span: tuple[int, int, int] | None = None  # first, last (1-based), of how many; None: all rows


def _label_layout(table: DatasetTable) -> _Layout:
    width = max([_pt("model"), *(_pt(r.label) for r in table.rows)])
    return _Layout(None, "l", ["model"], min(width, LABEL_CAP_PT), LABEL_CAP_PT)


def _column_layout(table: DatasetTable, col: Column, estimates: dict[tuple[int, str], _Cell],
                   label: _Layout) -> _Layout:
    cells = [estimates[(id(r), col.key)] for r in table.rows]
    natural = max([c.width for c in cells], default=0.0)
    room = WIDTH_BUDGET_PT - label.width - 2 * TABCOLSEP_PT
    align = "l" if col.key == HYPERPARAMETERS and not col.metric else "r"
    cap = min(room, TEXT_CAP_PT) if align == "l" else room
    header = _split_header(_header_words(col), max(natural, 1.0))
    width = min(max(natural, *(_pt(h) for h in header)), cap)
    return _Layout(col, align, header, width, cap)


def _fit_text_column(layouts: list[_Layout], label: _Layout) -> None:
    """Narrow the one text column of the cost columns (hyperparameters, which wrap) where that lets all
    of them share one table."""
    text = [lay for lay in layouts if lay.align == "l"]
    if len(text) != 1:
        return
    lay = text[0]
    others = sum(o.width + 2 * TABCOLSEP_PT for o in layouts if o is not lay)
    room = WIDTH_BUDGET_PT - label.width - others - 2 * TABCOLSEP_PT
    if lay.width > room >= max(MIN_TEXT_PT, *(_pt(h) for h in lay.header)):
        lay.width = lay.cap = room


def _row_lines(row: Row, layouts: list[_Layout], estimates: dict[tuple[int, str], _Cell]) -> int:
    lines = _lines_needed(row.label, layouts[0].cap, FONT_PT) if _pt(row.label) > layouts[0].cap else 1
    for lay in layouts[1:]:
        assert lay.column is not None
        cell = estimates[(id(row), lay.column.key)]
        if cell.width > lay.cap:
            n = sum(_lines_needed(line, lay.cap, FONT_PT * (BOLD if i == 0 and cell.best else 1.0))
                    for i, line in enumerate(cell.lines))
        else:
            n = len(cell.lines)
        lines = max(lines, n)
    return lines


def _shown(row: Row, columns: list[Column]) -> bool:
    """Model rows always; a reference row where it has something in one of ``columns``."""
    return row.kind == "model" or any(row.cells.get(c.key, TableCell()).text(Notes()) for c in columns)


def _notes_height(texts: list[str]) -> float:
    return 6.0 + sum(_lines_needed(f"[{i}] {t}", TEXTWIDTH_PT, NOTE_FONT_PT, fill=0.95)
                     for i, t in enumerate(texts, 1)) * NOTE_LINE_PT


def _parts(board: Leaderboard, table: DatasetTable) -> list[_Part]:
    """The table's parts: metric column groups, then cost column groups, each split by rows if too tall."""
    counter = Notes()
    for r in table.rows:
        for c in table.columns:
            r.cells.get(c.key, TableCell()).text(counter)
    widest = _WidestNotes(max(len(counter.items), 1))
    estimates = {(id(r), c.key): _cell(r.cells.get(c.key, TableCell()), widest)
                 for r in table.rows for c in table.columns}
    label = _label_layout(table)
    metric = [c for c in table.columns if c.metric]
    cost = [c for c in table.columns if not c.metric]
    groups: list[tuple[list[_Layout], bool]] = []
    for cols, is_metric in ((metric, True), (cost, False)):
        layouts = [_column_layout(table, c, estimates, label) for c in cols]
        if not is_metric:
            _fit_text_column(layouts, label)
        sizes = [lay.width + 2 * TABCOLSEP_PT for lay in layouts]
        for idx in _partition(sizes, WIDTH_BUDGET_PT, label.width):
            groups.append(([layouts[i] for i in idx], is_metric))
    if not groups:  # no column at all: the model column alone
        groups.append(([], True))
    parts: list[_Part] = []
    for g, (layouts, is_metric) in enumerate(groups):
        columns = [lay.column for lay in layouts if lay.column is not None]
        rows = [r for r in table.rows if _shown(r, columns)]
        all_layouts = [label, *layouts]
        heights = [_row_lines(r, all_layouts, estimates) * LINE_PT for r in rows]
        header = max([len(lay.header) for lay in all_layouts]) * LINE_PT + 24.0
        caption = 2 * 12.0 + 14.0
        reasons = Notes()
        for r in rows:
            for c in columns:
                r.cells.get(c.key, TableCell()).text(reasons)
        legends = legend_notes(board, replace(table, columns=columns, omitted=table.omitted if g == 0 else []))
        notes = [*reasons.items, *legends, _conventions(columns, is_metric)]
        room = max(HEIGHT_BUDGET_PT - header - caption - _notes_height(notes), 8 * LINE_PT)
        chunks = _partition(heights, room)
        for chunk in chunks:
            span = (chunk[0] + 1, chunk[-1] + 1, len(rows)) if len(chunks) > 1 else None
            parts.append(_Part(table, columns, [rows[i] for i in chunk], all_layouts, is_metric, span))
    return [p for p in parts if p.rows]  # e.g. reference rows only, none with a value in these columns


# -- rendering ------------------------------------------------------------------------------------


def _conventions(columns: list[Column], metric: bool) -> str:
    """The one line under every part on how to read it."""
    if metric:
        return (f"Mean ± standard error over seeds; (k/n seeds): fewer than all seeds have a value. ↑/↓: higher/lower "
                f"is better. Bold: best in its column among entries with the same tag and every seed; ≈: not "
                f"significantly different from it ({TEST_NAME}, two-sided, α = {ALPHA}).")
    return "; ".join(f"{c.title}: {COST_MEANINGS[c.key]}" for c in columns if c.key in COST_MEANINGS) + "."


def _pt_arg(width: float) -> str:
    return f"{width:.1f}pt"


def _render_cell(cell: _Cell, lay: _Layout) -> str:
    if not cell.lines:
        return ""
    wrap = cell.width > lay.cap + 1e-9
    lines = [tex_escape(line, breakable=wrap) for line in cell.lines]
    if cell.best:
        lines[0] = r"\textbf{" + lines[0] + "}"
    elif cell.tie:
        lines[0] += r" $\approx$"
    if wrap:
        ragged = r"\raggedright" if lay.align == "l" else r"\raggedleft"
        return r"\parbox[t]{" + _pt_arg(lay.cap) + "}{" + ragged + " " + r"\par ".join(lines) + r"\strut}"
    if len(lines) == 1:
        return lines[0]
    return r"\begin{tabular}[t]{@{}" + lay.align + "@{}}" + r" \\ ".join(lines) + r"\end{tabular}"


def _render_header(lay: _Layout) -> str:
    if any(_pt(h) > lay.cap + 1e-9 for h in lay.header):
        ragged = r"\raggedright" if lay.align == "l" else r"\raggedleft"
        text = tex_escape(" ".join(lay.header), breakable=True)
        return r"\parbox[b]{" + _pt_arg(lay.cap) + "}{" + ragged + " " + text + "}"
    lines = [tex_escape(h) for h in lay.header]
    if len(lines) == 1:
        return lines[0]
    return r"\begin{tabular}[b]{@{}" + lay.align + "@{}}" + r" \\ ".join(lines) + r"\end{tabular}"


def _label_slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", unicodedata.normalize("NFKD", text)).strip("-").lower() or "x"


def _caption(board: Leaderboard, part: _Part, k: int, n: int) -> str:
    if part.metric:
        what = ("metrics " if len(part.columns) > 1 else "metric ") + ", ".join(c.title for c in part.columns)
    else:
        what = "cost and settings"
    if part.row_span:
        first, last, total = part.row_span
        what += f"; rows {first}–{last} of {total}"
    where = f" (part {k} of {n}: {what})" if n > 1 else f" ({what})" if part.columns else ""
    return f"benchbed suite {board.suite.name}: {part.table.dataset}{where}"


def _render_part(board: Leaderboard, part: _Part, k: int, n: int, label: str) -> list[str]:
    notes = Notes()
    body: list[str] = []
    previous_kind = None
    for r in part.rows:
        if previous_kind == "reference" and r.kind == "model":
            body.append(r"\midrule")
        previous_kind = r.kind
        label_cell = _Cell([r.label])
        cells = [_render_cell(label_cell, part.layouts[0])]
        for lay in part.layouts[1:]:
            assert lay.column is not None
            cells.append(_render_cell(_cell(r.cells.get(lay.column.key, TableCell()), notes), lay))
        body.append(" & ".join(cells) + r" \\")
    legend_table = replace(part.table, columns=part.columns, rows=part.rows,
                           omitted=part.table.omitted if k == 1 else [])
    for text in legend_notes(board, legend_table):
        notes.ref(text)
    spec = "@{}" + "".join(lay.align for lay in part.layouts) + "@{}"
    out = [r"\begin{table}[htbp]", r"\centering",
           r"\caption{" + tex_escape(_caption(board, part, k, n), breakable=True) + "}",
           r"\label{" + label + "}", r"\smallskip", r"\small", r"\setlength{\tabcolsep}{" + _pt_arg(TABCOLSEP_PT) + "}",
           r"\begin{tabular}{" + spec + "}", r"\toprule",
           " & ".join(_render_header(lay) for lay in part.layouts) + r" \\", r"\midrule", *body,
           r"\bottomrule", r"\end{tabular}", r"\par\smallskip",
           r"\begin{minipage}{\linewidth}", r"\footnotesize\raggedright"]
    out += [f"[{i}]~" + tex_escape(text, breakable=True) + r"\par" for i, text in enumerate(notes.items, 1)]
    out += [tex_escape(_conventions(part.columns, part.metric), breakable=True) + r"\par",
            r"\end{minipage}", r"\end{table}", ""]
    return out


def estimated_widths(board: Leaderboard) -> list[float]:
    """The estimated width in pt of every table :func:`to_latex` writes, in order (each at most
    :data:`WIDTH_BUDGET_PT`: cells wider than their column's share wrap)."""
    return [sum(lay.width for lay in p.layouts) + 2 * TABCOLSEP_PT * (len(p.layouts) - 1)
            for t in board.tables for p in _parts(board, t)]


def _comment(text: str) -> str:
    """A LaTeX comment line in plain ASCII."""
    out = []
    for c in str(text):
        if c in "–—−":
            out.append("-")
        elif c.isascii():
            out.append(c if c.isprintable() else " ")
        else:
            out.append(unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode())
    return "% " + "".join(out)


def to_latex(board: Leaderboard) -> str:
    """booktabs ``table`` floats that fit a default article page, with their notes (see the module doc)."""
    body: list[str] = []
    index: list[str] = []
    used: set[str] = set()
    for t in board.tables:
        parts = _parts(board, t)
        for k, part in enumerate(parts, 1):
            base = f"tab:benchbed-{_label_slug(board.suite.name)}-{_label_slug(t.dataset)}-{k}"
            label, extra = base, 1
            while label in used:
                extra += 1
                label = f"{base}-{extra}"
            used.add(label)
            index.append(_comment(f"  {label}: {_caption(board, part, k, len(parts))}"))
            body += _render_part(board, part, k, len(parts), label)
    head = [_comment(f"benchbed leaderboard of suite {board.suite.name}: {len(index)} booktabs tables generated "
                     "from the results of a real run; do not edit by hand."),
            "% Preamble: \\documentclass{article} (10pt) and \\usepackage{booktabs}; no other package is needed.",
            "% Use: \\input{table} in the document body. Each table fits the text width of that page (345pt)."]
    if index:
        head += ["% Tables:", *index]
    else:
        head.append("% No results yet: no table.")
    return "\n".join([*head, "", *body]).rstrip("\n") + "\n"
