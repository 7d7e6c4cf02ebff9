"""Command-line changes to a suite: ``--set KEY=VALUE`` overrides and cell selection.

Both are applied while the suite is loaded (:func:`benchbed.suite.load_suite`), before any training,
so an overridden or filtered suite is checked exactly as a suite file is.

``--set``: ``KEY`` is a dotted TOML key (``models.vae.latent_dim``, ``budget.steps``, ``seeds``,
``samplers.langevin.posterior.n_steps``, quoted parts allowed); ``VALUE`` is read as a TOML value, typed
as it would be in the file (``16``, ``1e-3``, ``[8, 16]``, ``"mlp"``, ``true``, ``{ n_steps = 5 }``).  A
bare word that is not a TOML value (``mlp``, ``test``) is taken as a string.  The override replaces the
value in the parsed file (a table given as VALUE replaces the whole table); tables *inside* an entry
(a per-model ``budget``, a sampler role) and the top-level ``[budget]`` are created when missing, but an
axis entry must exist in the file: ``--set`` changes entries, it does not add them.  Errors found while
checking the suite name the override (``(--set models.vae.latent_dim=-1)``) where a file error names
the line.

Selection (``--models a,b --samplers x --datasets d --metrics m --seeds 0,1``) keeps the cells of the
full suite whose model, sampler, data set and seed are selected, and evaluates only the selected
metrics; the names are the suite's entry labels (and, for samplers, a model's default sampler when the
suite pairs it with none).  A selected cell has the run id it has in the full suite, so a filtered run
reuses and adds to the same store.  With ``--samplers``, models without dynamics (no sampler) are left
out: their cells have no sampler.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchbed.errors import SuiteError

if TYPE_CHECKING:
    from benchbed.registry import Registry
    from benchbed.suite import Entry, Suite

#: Axes an entry must exist in before ``--set`` may change it.
_AXES = ("models", "samplers", "datasets", "metrics")
_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/+-]*$")


@dataclass(frozen=True)
class Override:
    """One parsed ``--set``: the key path, the typed value and the text as given (for messages)."""

    path: tuple[str, ...]
    value: Any
    text: str

    @property
    def dotted(self) -> str:
        """The key path joined with dots (as the suite's messages name keys)."""
        return ".".join(self.path)

    @property
    def place(self) -> str:
        """`` (--set KEY=VALUE)``: where a value came from, in the form of a file's `` (file, line N)``."""
        return f" (--set {self.text})"


def parse_override(text: str) -> Override:
    """Parse ``KEY=VALUE`` (see the module docstring).

    Raises:
        SuiteError: no ``=``, a key that is not a dotted TOML key, or a value that is neither a TOML value
            nor a bare word.
    """
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise SuiteError(f"--set {text}: expected KEY=VALUE, e.g. --set models.vae.latent_dim=16")
    try:
        parsed = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        raise SuiteError(f"--set {text}: {key!r} is not a dotted key such as models.vae.latent_dim") from None
    path: list[str] = []
    node: Any = parsed
    while isinstance(node, dict):
        (name,) = node
        path.append(name)
        node = node[name]
    try:
        typed = tomllib.loads(f"v = {value}")["v"] if value else None
    except tomllib.TOMLDecodeError as exc:
        if not _BARE_WORD.match(value):
            raise SuiteError(f"--set {text}: {value!r} is not a TOML value ({exc}); strings may be quoted: "
                             f"--set '{key}=\"{value}\"'") from None
        typed = value
    if typed is None:
        raise SuiteError(f"--set {text}: no value after '='")
    return Override(tuple(path), typed, text)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[Override], where: str) -> dict[str, Any]:
    """Apply ``overrides`` in order to the parsed suite file ``raw`` (changed in place and returned).

    Raises:
        SuiteError: an override names an axis entry the file lacks (listing the entries, with a close
            match), replaces a whole axis, or sets a key below a value that is not a table.
    """
    for o in overrides:
        if o.path[0] in _AXES:
            axis = raw.get(o.path[0])
            entries = [str(k) for k in axis] if isinstance(axis, dict) else []
            if len(o.path) < 3:
                raise SuiteError(f"{where}: --set {o.text}: set a parameter of an entry "
                                 f"({o.path[0]}.<entry>.<parameter>); entries: {', '.join(entries) or 'none'}")
            if o.path[1] not in entries:
                close = difflib.get_close_matches(o.path[1], entries, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SuiteError(f"{where}: --set {o.text}: the suite has no entry [{o.path[0]}.{o.path[1]}]{hint}; "
                                 f"entries: {', '.join(entries) or 'none'}. --set changes entries, it does not add "
                                 "them")
        node = raw
        for i, part in enumerate(o.path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SuiteError(f"{where}: --set {o.text}: {'.'.join(o.path[:i + 1])} is "
                                 f"{type(child).__name__} {child!r}, not a table")
            node = child
        node[o.path[-1]] = o.value
    return raw


def placed(overrides: Sequence[Override], section: str, key: str | None) -> str | None:
    """The place (`` (--set ...)``) of the last override that set ``section.key`` or a table above it;
    ``None`` when the value came from the file."""
    dotted = ".".join(p for p in (section, key) if p)
    for o in reversed(overrides):
        if dotted == o.dotted or dotted.startswith(o.dotted + "."):
            return o.place
    return None


# -- selection ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The cells and metrics to keep: for each option given, the names (``None``: all).

    Built by :func:`parse_selection`; applied by :func:`select`.
    """

    models: tuple[str, ...] | None = None
    samplers: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in dataclasses.astuple(self))

    def describe(self) -> str:
        """``--models a,b --seeds 0`` (the options that reproduce this selection)."""
        return " ".join(f"--{k} {','.join(map(str, v))}" for k, v in dataclasses.asdict(self).items()
                        if v is not None)


def parse_selection(options: Mapping[str, str | None]) -> Selection:
    """``{"models": "a,b", "seeds": "0,1", ...}`` (comma-separated option texts; ``None``: not given).

    Raises:
        SuiteError: an empty name list, or a seed that is not an integer.
    """
    values: dict[str, Any] = {}
    for key, text in options.items():
        if text is None:
            continue
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        if not names:
            raise SuiteError(f"--{key} {text!r}: give one or more comma-separated names")
        if key == "seeds":
            try:
                values[key] = tuple(int(n) for n in names)
            except ValueError:
                raise SuiteError(f"--seeds {text!r}: seeds are integers, e.g. --seeds 0,1") from None
        else:
            values[key] = names
    return Selection(**values)


def _check_names(option: str, given: Sequence[Any], valid: Sequence[Any]) -> None:
    unknown = [g for g in given if g not in valid]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), [str(v) for v in valid], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SuiteError(f"--{option}: {unknown[0]!r} is not {'a seed' if option == 'seeds' else 'an entry'} of the "
                         f"suite{hint}; valid: {', '.join(map(str, valid)) or 'none'}")


def _pairs(suite: Suite, registry: Registry, model: Entry) -> list[str]:
    """The sampler labels of ``model``'s cells in ``suite`` (as :func:`benchbed.grid.plan` pairs them)."""
    spec = registry.model(model.component)
    axis = [s for s in suite.samplers if model.samplers is None or s.label in model.samplers]
    accepted = [s.label for s in axis if spec.accepts_sampler(s.component)]
    if not accepted and spec.default_sampler is not None:
        return [spec.default_sampler]
    return accepted


def select(suite: Suite, registry: Registry, selection: Selection) -> Suite:
    """``suite`` keeping only the selected entries and seeds (every cell of the result is a cell of
    ``suite``, with the same run id).

    Raises:
        SuiteError: a name that is not an entry (or seed) of the suite, listing the valid ones; a
            selection that leaves no cell.
    """
    if not selection:
        return suite
    kept: dict[str, Any] = {}
    for axis in ("models", "datasets", "metrics"):
        names: tuple[str, ...] | None = getattr(selection, axis)
        entries: tuple[Entry, ...] = getattr(suite, axis)
        if names is not None:
            _check_names(axis, names, [e.label for e in entries])
            kept[axis] = tuple(e for e in entries if e.label in names)
    if selection.seeds is not None:
        _check_names("seeds", selection.seeds, list(suite.seeds))
        kept["seeds"] = tuple(s for s in suite.seeds if s in selection.seeds)
    models: tuple[Entry, ...] = kept.get("models", suite.models)
    if selection.samplers is not None:
        dynamic = [m for m in suite.models if registry.model(m.component).uses_sampler]
        valid = list(dict.fromkeys([s.label for s in suite.samplers]
                                   + [p for m in dynamic for p in _pairs(suite, registry, m)]))
        _check_names("samplers", selection.samplers, valid)
        chosen = []
        for model in models:
            if not registry.model(model.component).uses_sampler:
                continue  # its cells have no sampler
            pairs = [p for p in _pairs(suite, registry, model) if p in selection.samplers]
            if pairs:
                labels = {s.label for s in suite.samplers}
                listed = tuple(p for p in pairs if p in labels)
                chosen.append(model if model.samplers is None or not listed
                              else dataclasses.replace(model, samplers=listed))
        models = tuple(chosen)
        kept["samplers"] = tuple(s for s in suite.samplers if s.label in selection.samplers)
    kept["models"] = models
    for axis in ("models", "datasets", "metrics"):
        if not kept.get(axis, True):
            raise SuiteError(f"the selection {selection.describe()} leaves no {axis[:-1]} of suite {suite.name!r}, "
                             "so no cell")
    return dataclasses.replace(suite, **kept)
