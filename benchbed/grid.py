"""Planning a suite: the grid of cells and the (model, metric) compatibility matrix, up front.

Two kinds of cells are planned.  The suite's cells, one per (model, sampler, data set, seed), are
the rows of its tables.  Held-out trainings are cells too: a metric that needs the cell's model
trained again without some classes (the outlier protocol) declares them with
``held_out_trainings(info) -> list[tuple[int, ...]]``, and each becomes a cell of its own, scheduled
before the cell that evaluates with it, checkpointed, resumable and stored (``kind = 'variant'``),
but never a row of a table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchbed.contracts import Budget, DatasetInfo
from benchbed.registry import Registry
from benchbed.specs import MetricSpec
from benchbed.suite import Entry, Suite, config_hash


@dataclass(frozen=True)
class Cell:
    """One (model, sampler, dataset, seed) combination: trained once, then every metric evaluated.

    ``run_id`` hashes the resolved training configuration, so an unchanged cell is recognised on
    resume; metrics are not part of it (adding a metric evaluates it on the stored model).

    ``held_out``: non-empty for a held-out training (a *variant* cell): the same model trained on the
    data set without these classes, for the metrics of the suite's cell with ``held_out = ()``.  Its
    configuration is the suite cell's plus ``held_out``, so the suite cell's run id does not depend on
    whether variants exist.  ``one_shot``: the model is fitted in one call, so the budget does not
    apply and is left out of the configuration.
    """

    suite: str
    model: Entry
    sampler: Entry | None
    dataset: Entry
    seed: int
    budget: Budget
    held_out: tuple[int, ...] = ()
    one_shot: bool = False

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "model": self.model.identity(),
            "sampler": None if self.sampler is None else self.sampler.identity(),
            "dataset": self.dataset.identity(),
            "seed": self.seed,
            "budget": None if self.one_shot else {"steps": self.budget.steps, "batch_size": self.budget.batch_size},
        }
        if self.held_out:
            config["held_out"] = list(self.held_out)
        return config

    @property
    def run_id(self) -> str:
        return config_hash(self.config)

    @property
    def is_variant(self) -> bool:
        """Whether this is a held-out training (never a row of the tables)."""
        return bool(self.held_out)

    @property
    def steps(self) -> int:
        """Training steps: the budget's, or one (the single ``fit`` call) for a one-shot model."""
        return 1 if self.one_shot else self.budget.steps

    @property
    def sampler_label(self) -> str:
        return "" if self.sampler is None else self.sampler.label

    @property
    def title(self) -> str:
        parts = [self.model.label] + ([self.sampler.label] if self.sampler else []) + [self.dataset.label]
        held = f" · held out {list(self.held_out)}" if self.held_out else ""
        return " · ".join(parts) + f" · seed {self.seed}" + held

    def variant(self, held_out: tuple[int, ...]) -> Cell:
        """The held-out training of this cell without classes ``held_out`` (in the order given)."""
        return dataclasses.replace(self, held_out=tuple(int(c) for c in held_out))

    @property
    def base(self) -> Cell:
        """The suite cell a variant belongs to (the cell itself when it is not a variant)."""
        return dataclasses.replace(self, held_out=())

    def identity(self) -> dict[str, Any]:
        """Columns identifying the cell in the store (a variant's ``kind`` is ``'variant'``)."""
        ident = {"suite": self.suite, "model": self.model.label, "model_component": self.model.component,
                 "sampler": self.sampler_label, "dataset": self.dataset.label, "seed": self.seed,
                 "config": self.config}
        return {**ident, "kind": "variant"} if self.held_out else ident


@dataclass(frozen=True)
class Plan:
    """What ``benchbed run`` does: the suite's cells, the held-out trainings they need, notes.

    Attributes:
        cells: the suite's cells, the rows of its tables, in grid order.
        variants: for the run id of a suite cell, its held-out trainings (none for most cells).
        notes: (model, sampler) pairs left out, and why.
    """

    cells: tuple[Cell, ...]
    variants: dict[str, tuple[Cell, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def order(self) -> list[Cell]:
        """Every cell in the order to run them: each suite cell right after its held-out trainings."""
        out: list[Cell] = []
        for cell in self.cells:
            out.extend(self.variants.get(cell.run_id, ()))
            out.append(cell)
        return out


def plan(suite: Suite, registry: Registry) -> tuple[list[Cell], list[str]]:
    """All cells of a suite (the rows of its tables), and notes on (model, sampler) pairs left out.

    A model with dynamics gets one cell per sampler of the axis it accepts (its default sampler
    when it accepts none of them, or the axis is empty); a model without dynamics gets one cell.
    Held-out trainings are not among them: see :func:`plan_run`.
    """
    cells: list[Cell] = []
    notes: list[str] = []
    for seed in suite.seeds:
        for dataset in suite.datasets:
            for model in suite.models:
                spec = registry.model(model.component)
                budget = suite.budget_for(model, dataset)
                if not spec.uses_sampler:
                    cells.append(Cell(suite.name, model, None, dataset, seed, budget, one_shot=spec.one_shot))
                    continue
                axis = [s for s in suite.samplers if model.samplers is None or s.label in model.samplers]
                accepted = [s for s in axis if spec.accepts_sampler(s.component)]
                if seed == suite.seeds[0] and dataset is suite.datasets[0]:
                    for s in axis:
                        if s not in accepted:
                            notes.append(f"model {model.label!r} does not accept sampler {s.label!r} "
                                         f"(it accepts {', '.join(spec.samplers or ())}); no cell for that pair")
                if not accepted:
                    assert spec.default_sampler is not None
                    name = spec.default_sampler
                    revision = registry.sampler(name).revision if name in registry.names("sampler") else 0
                    accepted = [Entry(name, name, {}, {}, revision=revision)]
                for sampler in accepted:
                    cells.append(Cell(suite.name, model, sampler, dataset, seed, budget, one_shot=spec.one_shot))
    return cells, notes


def plan_run(suite: Suite, registry: Registry, info: Callable[[Entry], DatasetInfo] | None = None) -> Plan:
    """The plan of ``benchbed run``: :func:`plan`'s cells with the held-out trainings their metrics need.

    ``info(dataset entry)`` gives a data set's :class:`DatasetInfo` (its classes), which a metric needs to
    say which classes it holds out ("every class"); without it, or when a data set fails to load (its
    cells then record the error), no held-out training is planned for that data set.  A metric plans
    trainings only where it applies (:func:`incompatibility`, with the capabilities the model declares
    before setup).
    """
    cells, notes = plan(suite, registry)
    variants: dict[str, tuple[Cell, ...]] = {}
    if info is not None:
        infos: dict[str, DatasetInfo | None] = {}
        capabilities: dict[str, frozenset[str] | None] = {}
        for cell in cells:
            key = config_hash(cell.dataset.identity())
            if key not in infos:
                try:
                    infos[key] = info(cell.dataset)
                except Exception:  # noqa: BLE001 - the data set's cells record the error
                    infos[key] = None
            data_info = infos[key]
            if data_info is None:
                continue
            if cell.model.label not in capabilities:
                capabilities[cell.model.label] = declared_capabilities(registry, cell.model)
            held = held_out_trainings(suite, registry, data_info, capabilities[cell.model.label],
                                      dataset=cell.dataset.label)
            if held:
                variants[cell.run_id] = tuple(cell.variant(h) for h in held)
    return Plan(tuple(cells), variants, tuple(notes))


def held_out_trainings(suite: Suite, registry: Registry, info: DatasetInfo,
                       capabilities: frozenset[str] | None = None, *,
                       dataset: str | None = None) -> list[tuple[int, ...]]:
    """The held-out class sets the suite's metrics declare for data ``info``, each once, in order.

    A metric declares them with ``held_out_trainings(info) -> list[tuple[int, ...]]``; one that does not
    apply to the data (or, when ``capabilities`` is given, to the model), or that the suite does not ask
    for on data set entry ``dataset`` (:meth:`benchbed.suite.Entry.not_asked`), declares none.
    """
    found: dict[tuple[int, ...], None] = {}
    for entry in suite.metrics:
        if dataset is not None and entry.not_asked(dataset):
            continue
        spec = registry.metric(entry.component)
        reason = data_incompatibility(spec, info) if capabilities is None else \
            incompatibility(spec, capabilities, info)
        if reason:
            continue
        declare = getattr(spec.factory(**entry.params), "held_out_trainings", None)
        if callable(declare):
            for classes in declare(info):
                found[tuple(int(c) for c in classes)] = None
    return list(found)


def declared_capabilities(registry: Registry, model: Entry) -> frozenset[str] | None:
    """The capabilities a model declares before setup (constructing a component does no work), or
    ``None`` when they cannot be read yet."""
    try:
        return frozenset(registry.model(model.component).factory(**model.params).capabilities)
    except Exception:  # noqa: BLE001 - known only after setup: assume every metric may apply
        return None


def incompatibility(metric: MetricSpec, capabilities: frozenset[str] | set[str], info: DatasetInfo) -> str | None:
    """Why ``metric`` cannot apply to a model with ``capabilities`` on data ``info`` (``None`` if it can).

    The capability half reads ``metric.requires``: a plain set names what is missing
    ("model lacks a, b (required by m)"); alternatives (:class:`benchbed.specs.AnyOf`) apply when
    one of them is complete, and otherwise are all named ("model lacks a, or b+c (required by m)").
    """
    return capability_incompatibility(metric, capabilities) or data_incompatibility(metric, info)


def capability_incompatibility(metric: MetricSpec, capabilities: frozenset[str] | set[str]) -> str | None:
    """The capability half of :func:`incompatibility` (``None`` if the model has what ``metric`` requires)."""
    caps = set(capabilities)
    alternatives = metric.alternatives
    if not any(alt <= caps for alt in alternatives):
        if len(alternatives) == 1:
            needed = ", ".join(sorted(alternatives[0] - caps))
        else:
            needed = metric.requires_text  # "a, or b+c"
        return f"model lacks {needed} (required by {metric.name})"
    return None


def data_incompatibility(metric: MetricSpec, info: DatasetInfo) -> str | None:
    """Why ``metric`` cannot apply to data ``info`` whatever the model (``None`` if it can)."""
    if info.kind not in metric.data_kinds:
        return f"{metric.name} applies to {'/'.join(sorted(metric.data_kinds))} data, not {info.kind}"
    if metric.needs_labels and info.n_classes == 0:
        return f"{metric.name} needs labels; data set {info.name!r} has none"
    return None
