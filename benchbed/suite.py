"""Suite files (TOML): parsing and validation against the registry.

A suite names its axes as tables keyed by entry name; an entry's keys are the component's
parameters, checked against the factory signature.  Reserved keys:

* ``component``: the registered name, when the entry name is an alias (``[models.jgmmn_noreg]``
  with ``component = "jgmmn"``), so an ablation is one more table;
* ``budget``: per-model or per-data-set override of ``steps`` / ``batch_size`` (a suite whose models
  are all one-shot, ``ModelSpec.one_shot``, may omit the top-level ``[budget]``: it does not apply);
* ``samplers`` (models only): the sampler entries this model pairs with (default: all of the axis),
  so an expensive sampler can be run with one model only;
* ``datasets`` (metrics only): the data set entries this metric is evaluated on (default: all of the
  axis), so an expensive protocol (the held-out-class trainings of the outlier metrics) runs where it
  matters; elsewhere the metric is ``n/a`` with the reason, and its column is left out of that table;
* in a sampler entry, any table-valued key is a role (``prior``, ``posterior``) whose values
  override the sampler parameters for that role.

Example::

    name = "quick"
    seeds = [0, 1]
    [budget]
    steps = 400
    batch_size = 100
    [datasets.gmm8]
    [models.vae]
    latent_dim = 2
    [samplers.langevin]
    posterior = { n_steps = 20 }
    [metrics.recon_mse]
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchbed.contracts import Budget
from benchbed.errors import SuiteError, SuiteErrors
from benchbed.overrides import Override, Selection, apply_overrides, parse_override, placed, select
from benchbed.params import resolve
from benchbed.registry import Registry
from benchbed.tracking import TrackingSettings, parse_tracking

AXES = ("models", "samplers", "datasets", "metrics")
TOP_KEYS = {"name", "description", "seeds", "device", "budget", "checkpoint_every", "eval_at", "tracking", *AXES}
BUDGET_KEYS = {"steps": int, "batch_size": int}
_T = TypeVar("_T")


@dataclass(frozen=True)
class Entry:
    """One entry of an axis: its label (the table key), the registered component, resolved parameters
    (``given``: only those the suite sets; a sampler's unset ones yield to the model's role defaults),
    and (samplers) per-role overrides, (models, datasets) a budget override."""

    label: str
    component: str
    params: Mapping[str, Any]
    given: Mapping[str, Any] = field(default_factory=dict)
    roles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    budget: Mapping[str, int] = field(default_factory=dict)
    samplers: tuple[str, ...] | None = None
    #: (metrics) the data set labels the metric is evaluated on; ``None``: every data set of the suite
    datasets: tuple[str, ...] | None = None
    #: the registered component's ``revision`` (:class:`benchbed.specs.ComponentSpec`)
    revision: int = 0

    def identity(self) -> dict[str, Any]:
        """What defines this entry for hashing: component, parameters, roles (and, for a metric asked on
        some data sets only, those: adding the restriction replaces the records it makes ``n/a``; and
        the component's revision when it is not 0: a fixed component does not reuse old results)."""
        ident: dict[str, Any] = {"component": self.component, "params": dict(self.params), "given": dict(self.given),
                                 "roles": {k: dict(v) for k, v in self.roles.items()}}
        if self.datasets is not None:
            ident["datasets"] = sorted(self.datasets)
        if self.revision:
            ident["revision"] = self.revision
        return ident

    def not_asked(self, dataset: str) -> str | None:
        """(metrics) Why this metric is not evaluated on data set entry ``dataset`` (``None``: it is)."""
        if self.datasets is None or dataset in self.datasets:
            return None
        return (f"the suite asks for {self.label} on {', '.join(self.datasets)} only "
                f"([metrics.{self.label}] datasets)")


@dataclass(frozen=True)
class Suite:
    """A validated suite."""

    name: str
    description: str
    path: Path | None
    seeds: tuple[int, ...]
    device: str
    budget: Budget
    checkpoint_every: int
    models: tuple[Entry, ...]
    samplers: tuple[Entry, ...]
    datasets: tuple[Entry, ...]
    metrics: tuple[Entry, ...]
    #: training steps (ascending) at which the metrics are also evaluated, on snapshots saved then
    #: (``docs/results.md#metrics-over-training``); a step equal to a cell's budget is its final evaluation
    eval_at: tuple[int, ...] = ()
    #: the ``--set KEY=VALUE`` overrides applied to the file, as given, and the cell selection
    #: (:mod:`benchbed.overrides`); a suite with either is a *partial* view of the suite file
    overrides: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)
    #: the ``[tracking]`` table: trackers each trained cell is also sent to (:mod:`benchbed.tracking`)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)

    @property
    def partial(self) -> bool:
        """Whether this is not the suite file as written: overridden (``--set``) or filtered (selection)."""
        return bool(self.overrides) or bool(self.selection)

    @property
    def source(self) -> SuiteSource:
        """What another process passes to :func:`load_suite` to load this same suite (overrides and
        selection included)."""
        if self.path is None:
            raise SuiteError(f"suite {self.name!r} has no file: another process cannot load it")
        return SuiteSource(str(self.path), self.overrides, self.selection)

    def budget_for(self, model: Entry, dataset: Entry) -> Budget:
        """Suite budget, overridden by the data set's ``budget``, then by the model's."""
        merged = {"steps": self.budget.steps, "batch_size": self.budget.batch_size, **dataset.budget, **model.budget}
        return Budget(steps=merged["steps"], batch_size=merged["batch_size"])

    @property
    def folder(self) -> Path | None:
        """The folder holding the suite file."""
        return None if self.path is None else self.path.parent

    @property
    def publish_folder(self) -> Path | None:
        """Where the suite's tables and ``runs.jsonl`` go: the suite file's folder for ``suite.toml``, else
        a folder named after the file beside it, so that two suite files in one folder never overwrite
        each other's tables."""
        if self.path is None:
            return None
        return self.path.parent if self.path.name == "suite.toml" else self.path.parent / self.path.stem


@dataclass(frozen=True)
class SuiteSource:
    """A suite file with its command-line ``overrides`` and ``selection``: picklable, for worker processes."""

    path: str
    overrides: tuple[str, ...] = ()
    selection: Selection = field(default_factory=Selection)


def config_hash(obj: Any) -> str:
    """Stable hash of a JSON-able configuration (sorted keys), 16 hex digits."""
    text = json.dumps(obj, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Locator:
    """Finds the line of ``key`` inside ``[section]`` in the TOML text, for error messages."""

    def __init__(self, text: str, path: Path | None, overrides: Sequence[Override] = ()) -> None:
        self.lines = text.splitlines()
        self.path = path
        self.overrides = overrides

    def __call__(self, section: str, key: str | None = None) -> str:
        """`` (file, line N)``, or `` (--set KEY=VALUE)`` for a value an override set."""
        if (override := placed(self.overrides, section, key)) is not None:
            return override
        where = str(self.path) if self.path else "<suite>"
        header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(
            rf'(?:"{re.escape(p)}"|{re.escape(p)})' for p in section.split(".")) + r"\s*\]")
        start = None
        for i, line in enumerate(self.lines):
            if header.match(line):
                start = i
                break
        if key is None:
            return f" ({where}, line {start + 1})" if start is not None else self._below(section, None, where)
        key_re = re.compile(rf"^\s*{re.escape(key)}\s*=|[{{,]\s*{re.escape(key)}\s*=")
        parent, _, last = section.rpartition(".")
        if start is None and parent:
            # Inline table on the parent's line (``vae = { latent_dim = 2 }``): look there first, so a
            # key repeated in an earlier entry is not taken for this one.
            entry = re.compile(rf'^\s*"?{re.escape(last)}"?\s*=\s*\{{')
            for i, line in enumerate(self.lines):
                if entry.match(line) and re.search(rf"\b{re.escape(key)}\s*=", line):
                    return f" ({where}, line {i + 1})"
        for i in range(start + 1 if start is not None else 0, len(self.lines)):
            if start is not None and i > start and self.lines[i].lstrip().startswith("["):
                break
            if key_re.search(self.lines[i]):
                return f" ({where}, line {i + 1})"
        return self._below(section, key, where)

    def _below(self, section: str, key: str | None, where: str) -> str:
        """Not in the file: `` (--set ...)`` of an override that made the table by setting a key inside it
        (``--set nosuch.key=1`` makes a top-level table ``nosuch``), else `` (file)``."""
        dotted = ".".join(p for p in (section, key) if p)
        below = next((o.place for o in reversed(self.overrides) if o.dotted.startswith(dotted + ".")), None)
        return below if below is not None else f" ({where})"


def load_suite(path: str | Path | SuiteSource, registry: Registry, *, overrides: Sequence[str] = (),
               selection: Selection | None = None) -> Suite:
    """Read and validate a suite file, with command-line ``overrides`` (``KEY=VALUE`` texts, applied to the
    file before it is checked) and a cell ``selection`` (applied after); see :mod:`benchbed.overrides`.
    A :class:`SuiteSource` (:attr:`Suite.source`) carries its own overrides and selection.

    Raises:
        SuiteError: the file is missing or not TOML (with line and column), a key is unknown,
            a component is unknown (with close matches), a parameter is unknown (with the valid
            ones) or of the wrong type (with file and line, or the ``--set`` that set it); an override or
            selection names an entry the suite lacks (listing the valid ones).
    """
    if isinstance(path, SuiteSource):
        overrides, selection, path = path.overrides, path.selection, path.path
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"cannot read suite file {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SuiteError(f"suite file {path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} "
                         "(save it as UTF-8)") from None
    suite = parse_suite(text, registry, path=path, overrides=[parse_override(o) for o in overrides])
    if selection:
        suite = select(suite, registry, selection)
    return dataclasses.replace(suite, selection=selection or Selection())


DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(name: object, where: str = "") -> str:
    """``name`` if it names a device benchbed can run on (auto, cpu, mps, cuda, cuda:N), else SuiteError."""
    if not isinstance(name, str) or not DEVICE.match(name):
        raise SuiteError(f"{where}device {name!r} is not one of auto, cpu, mps, cuda, cuda:N")
    return name


def parse_suite(text: str, registry: Registry, *, path: Path | None = None,
                overrides: Sequence[Override] = ()) -> Suite:
    """Validate suite TOML ``text`` with ``overrides`` applied (see :func:`load_suite`)."""
    where = str(path) if path else "<suite>"
    text = text.removeprefix("\ufeff")  # a byte-order mark is not TOML, but editors write one
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{where}: invalid TOML: {exc}") from exc
    raw = apply_overrides(raw, overrides, where)
    loc = _Locator(text, path, overrides)
    # Independent problems are collected and raised together (one line each), so that a suite author
    # fixes every mistake of the file in one round; a check that needs an earlier one's value runs after.
    problems: list[SuiteError] = [
        SuiteError(f"{where}: unknown top-level key {key!r}{loc('', key)}; valid keys: {', '.join(sorted(TOP_KEYS))}")
        for key in sorted(set(raw) - TOP_KEYS)
    ]
    default_name = "suite" if path is None else (path.parent.resolve().name if path.name == "suite.toml"
                                                 else path.stem)
    name = _collect(problems, default_name, lambda: _name(raw, where, loc, default_name))
    seeds = _collect(problems, [0], lambda: _seeds(raw, where, loc))
    budget_raw: dict[str, Any] = _collect(problems, {}, lambda: _typed(raw, "budget", dict, where, loc, default={}))
    no_budget: dict[str, int] = {}
    budget = _collect(problems, no_budget, lambda: _budget(budget_raw, "budget", where, loc, required=False))
    device = _collect(problems, "auto", lambda: _device(raw, where, loc))
    checkpoint_every = _collect(problems, 0, lambda: _checkpoint_every(raw, where, loc))
    description = _collect(problems, "", lambda: _typed(raw, "description", str, where, loc, default=""))
    axes = {axis: _axis(raw, axis, registry, where, loc, problems) for axis in AXES}
    _raise_all(problems)
    # Second round: the checks that need the validated axes, again collected together.
    for axis in ("models", "datasets", "metrics"):
        if not axes[axis]:
            problems.append(SuiteError(f"{where}: the suite names no {axis} (add a [{axis}.<name>] table)"))
    if any(not registry.model(m.component).one_shot for m in axes["models"]):
        _collect(problems, None, lambda: _budget(budget_raw, "budget", where, loc, required=True))
    else:  # one-shot models only: the budget does not apply to them, so the suite may omit it
        budget = {"steps": 1, "batch_size": 1, **budget}
    _check_roles(axes["models"], axes["samplers"], registry, where, loc, problems)
    no_steps: tuple[int, ...] = ()
    eval_at = _collect(problems, no_steps, lambda: _eval_at(raw, budget, axes, registry,
                                                      f"{where}: 'eval_at'{loc('', 'eval_at')}"))
    tracking = _collect(problems, TrackingSettings(),
                        lambda: parse_tracking(raw.get("tracking"), registry, f"{where}{loc('tracking')}"))
    _raise_all(problems)
    return Suite(
        name=name,
        description=description,
        path=path,
        seeds=tuple(seeds),
        device=device,
        budget=Budget(**budget),
        checkpoint_every=checkpoint_every,
        models=axes["models"], samplers=axes["samplers"], datasets=axes["datasets"], metrics=axes["metrics"],
        overrides=tuple(o.text for o in overrides),
        eval_at=eval_at,
        tracking=tracking,
    )


def _eval_at(raw: Mapping[str, Any], budget: Mapping[str, int], axes: Mapping[str, tuple[Entry, ...]],
             registry: Registry, what: str) -> tuple[int, ...]:
    """The suite's ``eval_at`` steps, ascending: distinct positive integers, none past the budget of any
    (model, data set) pair of a model that trains by steps (one-shot models have no intermediate steps).

    Raises:
        SuiteError: naming the file, the key and the offending value.
    """
    steps = raw.get("eval_at", [])
    if not isinstance(steps, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
        raise SuiteError(f"{what} must be a list of training steps (positive integers), got {steps!r}")
    if bad := [s for s in steps if s <= 0]:
        raise SuiteError(f"{what}: step {bad[0]} is not a positive number of training steps")
    if dupes := sorted({s for s in steps if steps.count(s) > 1}):
        raise SuiteError(f"{what} repeats step {dupes[0]}: each step is evaluated once")
    for model in axes["models"]:
        if registry.model(model.component).one_shot:
            continue
        for dataset in axes["datasets"]:
            limit = {**budget, **dataset.budget, **model.budget}.get("steps")
            if limit is None:  # no step budget: reported by the budget check, nothing to compare with
                continue
            if over := [s for s in steps if s > limit]:
                raise SuiteError(f"{what}: step {over[0]} is past the budget of model {model.label!r} on data set "
                                 f"{dataset.label!r} ({limit} steps); every step must be at most the budget "
                                 "(a step equal to it is the final evaluation)")
    return tuple(sorted(steps))


def _collect(problems: list[SuiteError], default: _T, check: Callable[[], _T]) -> _T:
    """``check()``, or ``default`` with its error appended to ``problems``."""
    try:
        return check()
    except SuiteError as exc:
        problems.append(exc)
        return default


def _name(raw: Mapping[str, Any], where: str, loc: _Locator, default: str) -> str:
    name: str = _typed(raw, "name", str, where, loc, default=default)
    if not name.strip() or "\n" in name or name != name.strip():
        raise SuiteError(f"{where}: 'name'{loc('', 'name')} must be one line without surrounding spaces, "
                         f"got {name!r}")
    return name


def _seeds(raw: Mapping[str, Any], where: str, loc: _Locator) -> list[int]:
    seeds: list[Any] = _typed(raw, "seeds", list, where, loc, default=[0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SuiteError(f"{where}: 'seeds'{loc('', 'seeds')} must be a non-empty list of integers, got {seeds!r}")
    if bad := [s for s in seeds if not 0 <= s < 2**63]:
        raise SuiteError(f"{where}: 'seeds'{loc('', 'seeds')}: seed {bad[0]} is outside 0 .. 2**63 - 1")
    if dupes := sorted({s for s in seeds if seeds.count(s) > 1}):
        raise SuiteError(f"{where}: 'seeds'{loc('', 'seeds')} repeats {dupes[0]}: each seed runs once")
    return seeds


def _device(raw: Mapping[str, Any], where: str, loc: _Locator) -> str:
    value = _typed(raw, "device", str, where, loc, default="auto")
    return check_device(value, f"{where}: 'device'{loc('', 'device')}: ")


def _checkpoint_every(raw: Mapping[str, Any], where: str, loc: _Locator) -> int:
    what = f"{where}: 'checkpoint_every'{loc('', 'checkpoint_every')}"
    return _non_negative(_typed(raw, "checkpoint_every", int, where, loc, default=0), what)


def _non_negative(value: int, what: str) -> int:
    if value < 0:
        raise SuiteError(f"{what} must be >= 0 (0: only the final checkpoint), got {value}")
    return value


def _check_roles(models: tuple[Entry, ...], samplers: tuple[Entry, ...], registry: Registry, where: str,
                 loc: _Locator, problems: list[SuiteError]) -> None:
    """Each sampler entry is paired with some model, and each of its per-role tables names a role that a
    model paired with it asks for; every offending sampler or role is appended to ``problems``."""
    for sampler in samplers:
        asked: set[str] = set()
        paired = [m for m in models if registry.model(m.component).uses_sampler
                  and (m.samplers is None or sampler.label in m.samplers)
                  and registry.model(m.component).accepts_sampler(sampler.component)]
        if not paired:
            problems.append(SuiteError(f"{where}: [samplers.{sampler.label}]{loc(f'samplers.{sampler.label}')} is "
                                       "used by no model of the suite (no model with dynamics accepts it); remove it"))
            continue
        for model in paired:
            spec = registry.model(model.component)
            if spec.sampler_roles is None:  # undeclared: any role may be meant for it
                break
            asked.update(spec.sampler_roles)
        else:
            for role in sampler.roles:
                if role not in asked:
                    close = difflib.get_close_matches(role, sorted(asked), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(SuiteError(
                        f"{where}: [samplers.{sampler.label}] role {role!r}{loc(f'samplers.{sampler.label}', role)}: "
                        f"no model paired with this sampler asks for it; roles asked: "
                        f"{', '.join(sorted(asked)) or 'none'}{hint}"))


def _typed(raw: Mapping[str, Any], key: str, typ: type, where: str, loc: _Locator, default: Any) -> Any:
    if key not in raw:
        return default
    value = raw[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise SuiteError(f"{where}: {key!r}{loc('', key)} must be {typ.__name__}, got {type(value).__name__} {value!r}")
    return value


#: The largest budget value a suite may give (steps or batch size): far past any real run, and well
#: inside the integers the store and torch hold (an overflow would surface as an internal error).
MAX_BUDGET = 10**12


def _budget(raw: Mapping[str, Any], section: str, where: str, loc: _Locator, required: bool) -> dict[str, int]:
    """The budget keys of ``[section]``; every bad or missing key is reported together (a line each)."""
    out: dict[str, int] = {}
    problems: list[SuiteError] = []
    for key, value in raw.items():
        if key not in BUDGET_KEYS:
            problems.append(SuiteError(f"{where}: unknown budget key {key!r} in [{section}]{loc(section, key)}; "
                                       f"valid: {', '.join(BUDGET_KEYS)}"))
        elif not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_BUDGET:
            problems.append(SuiteError(f"{where}: [{section}] {key!r}{loc(section, key)} must be a positive integer "
                                       f"(at most {MAX_BUDGET:.0e}), got {value!r}"))
        else:
            out[key] = value
    if required:
        problems += [SuiteError(f"{where}: [{section}] needs {key!r}{loc(section)}")
                     for key in BUDGET_KEYS if key not in out and key not in raw]
    _raise_all(problems)
    return out


def _raise_all(problems: Sequence[SuiteError]) -> None:
    """Raise the one error of ``problems`` as it is, or one error listing all of them (a line each)."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SuiteErrors(list(problems))


def _axis(raw: Mapping[str, Any], axis: str, registry: Registry, where: str, loc: _Locator,
          problems: list[SuiteError]) -> tuple[Entry, ...]:
    """The entries of one axis table.  An entry with an error is left out and its error appended to
    ``problems``, so that one validation reports every bad entry, not only the first."""
    table = raw.get(axis, {})
    if not isinstance(table, dict):
        problems.append(SuiteError(f"{where}: {axis!r}{loc('', axis)} must be a table of entries, "
                                   f"got {type(table).__name__}"))
        return ()
    entries: list[Entry] = []
    for label, body in table.items():
        entry = _collect(problems, None, functools.partial(_entry, raw, axis, str(label), body, entries, registry,
                                                           where, loc))
        if entry is not None:
            entries.append(entry)
    return tuple(entries)


def _entry(raw: Mapping[str, Any], axis: str, label: str, body: Any, entries: Sequence[Entry], registry: Registry,
           where: str, loc: _Locator) -> Entry:
    """One ``[axis.label]`` table as an :class:`Entry`; ``entries``: those of the axis before it."""
    kind = axis[:-1]
    section = f"{axis}.{label}"
    if not isinstance(body, dict):
        raise SuiteError(f"{where}: [{section}]{loc(axis, label)} must be a table of parameters, "
                         f"got {type(body).__name__} {body!r}")
    body = dict(body)
    named = "component" in body
    component = body.pop("component", label)
    if not isinstance(component, str):
        raise SuiteError(f"{where}: [{section}] 'component'{loc(section, 'component')} must be a string "
                         f"naming a registered {kind}, got {type(component).__name__} {component!r}")
    try:
        spec = registry.get(kind, component).spec
    except SuiteError as exc:  # named where the name was given: the component key, else the table
        at = loc(section, "component") if named else loc(section)
        raise SuiteError(f"{where}: [{section}]{at}: {exc}") from None
    budget: dict[str, int] = {}
    if axis in ("models", "datasets"):
        given_budget = body.pop("budget", {})
        if not isinstance(given_budget, dict):
            raise SuiteError(f"{where}: [{section}] 'budget'{loc(section, 'budget')} must be a table such as "
                             f"{{ steps = 1000 }}, got {type(given_budget).__name__} {given_budget!r}")
        budget = _budget(given_budget, f"{section}.budget", where, loc, required=False)
    roles = {k: body.pop(k) for k in [k for k, v in body.items() if isinstance(v, dict)]} \
        if axis == "samplers" else {}
    pairs = None
    if axis == "models" and "samplers" in body:
        pairs = body.pop("samplers")
        known = [str(k) for k in raw.get("samplers", {})]
        if not isinstance(pairs, list) or not all(isinstance(p, str) and p in known for p in pairs):
            raise SuiteError(f"{where}: [{section}] 'samplers'{loc(section, 'samplers')} must list sampler "
                             f"entries of this suite ({', '.join(known) or 'none'}), got {pairs!r}")
        if not getattr(spec, "uses_sampler", False):
            raise SuiteError(f"{where}: [{section}] 'samplers'{loc(section, 'samplers')}: model {component!r} "
                             "has no dynamics, so no sampler applies to it; remove the key")
        if not pairs or len(set(pairs)) != len(pairs):
            raise SuiteError(f"{where}: [{section}] 'samplers'{loc(section, 'samplers')} must name each sampler "
                             f"entry once and at least one, got {pairs!r}")
        pairs = tuple(pairs)
    on = None
    if axis == "metrics" and "datasets" in body:
        on = body.pop("datasets")
        known = [str(k) for k in raw.get("datasets", {})]
        if not isinstance(on, list) or not on or not all(isinstance(d, str) and d in known for d in on) \
                or len(set(on)) != len(on):
            raise SuiteError(f"{where}: [{section}] 'datasets'{loc(section, 'datasets')} must list data set "
                             f"entries of this suite, each once and at least one ({', '.join(known) or 'none'}), "
                             f"got {on!r}")
        on = tuple(on)
    what = f"{where}: {kind} {label!r}" + (f" (component {component!r})" if component != label else "")
    params = resolve(spec.factory, body, what=what, where=functools.partial(loc, section))
    for role, values in roles.items():
        resolve(spec.factory, values, what=f"{what} role {role!r}",
                where=functools.partial(loc, f"{section}.{role}"))
    given = {k: params[k] for k in body}
    entry = Entry(label, component, params, given, roles, budget, pairs, on, revision=spec.revision)
    # Two labels for one identity would share their cells: the run stored under one label would be
    # published under the other.  (Metric records are keyed by label, so metric aliases are fine.)
    twin = None if axis == "metrics" else next(
        (e for e in entries if config_hash(e.identity()) == config_hash(entry.identity())
         and e.budget == entry.budget and e.samplers == entry.samplers), None)
    if twin is not None:
        raise SuiteError(f"{where}: [{section}]{loc(section)} has the same component and settings as "
                         f"[{axis}.{twin.label}]: they would be one cell; remove one or change a setting")
    return entry
