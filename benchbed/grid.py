"""Planning a suite: the grid of cells and the (model, metric) compatibility matrix, up front."""

from __future__ import annotations

from dataclasses import dataclass
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
    """

    suite: str
    model: Entry
    sampler: Entry | None
    dataset: Entry
    seed: int
    budget: Budget

    @property
    def config(self) -> dict[str, Any]:
        return {
            "model": self.model.identity(),
            "sampler": None if self.sampler is None else self.sampler.identity(),
            "dataset": self.dataset.identity(),
            "seed": self.seed,
            "budget": {"steps": self.budget.steps, "batch_size": self.budget.batch_size},
        }

    @property
    def run_id(self) -> str:
        return config_hash(self.config)

    @property
    def sampler_label(self) -> str:
        return "" if self.sampler is None else self.sampler.label

    @property
    def title(self) -> str:
        parts = [self.model.label] + ([self.sampler.label] if self.sampler else []) + [self.dataset.label]
        return " · ".join(parts) + f" · seed {self.seed}"

    def identity(self) -> dict[str, Any]:
        """Columns identifying the cell in the store."""
        return {"suite": self.suite, "model": self.model.label, "model_component": self.model.component,
                "sampler": self.sampler_label, "dataset": self.dataset.label, "seed": self.seed,
                "config": self.config}


def plan(suite: Suite, registry: Registry) -> tuple[list[Cell], list[str]]:
    """All cells of a suite, and notes on (model, sampler) pairs left out.

    A model with dynamics gets one cell per sampler of the axis it accepts (its default sampler
    when it accepts none of them, or the axis is empty); a model without dynamics gets one cell.
    """
    cells: list[Cell] = []
    notes: list[str] = []
    for seed in suite.seeds:
        for dataset in suite.datasets:
            for model in suite.models:
                spec = registry.model(model.component)
                budget = suite.budget_for(model, dataset)
                if not spec.uses_sampler:
                    cells.append(Cell(suite.name, model, None, dataset, seed, budget))
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
                    accepted = [Entry(spec.default_sampler, spec.default_sampler, {}, {})]
                for sampler in accepted:
                    cells.append(Cell(suite.name, model, sampler, dataset, seed, budget))
    return cells, notes


def incompatibility(metric: MetricSpec, capabilities: frozenset[str] | set[str], info: DatasetInfo) -> str | None:
    """Why ``metric`` cannot apply to a model with ``capabilities`` on data ``info`` (``None`` if it can).

    The capability half reads ``metric.requires``: a plain set names what is missing
    ("model lacks a, b (required by m)"); alternatives (:class:`benchbed.specs.AnyOf`) apply when
    one of them is complete, and otherwise are all named ("model lacks a, or b+c (required by m)").
    """
    caps = set(capabilities)
    alternatives = metric.alternatives
    if not any(alt <= caps for alt in alternatives):
        if len(alternatives) == 1:
            needed = ", ".join(sorted(alternatives[0] - caps))
        else:
            needed = metric.requires_text  # "a, or b+c"
        return f"model lacks {needed} (required by {metric.name})"
    return data_incompatibility(metric, info)


def data_incompatibility(metric: MetricSpec, info: DatasetInfo) -> str | None:
    """Why ``metric`` cannot apply to data ``info`` whatever the model (``None`` if it can)."""
    if info.kind not in metric.data_kinds:
        return f"{metric.name} applies to {'/'.join(sorted(metric.data_kinds))} data, not {info.kind}"
    if metric.needs_labels and info.n_classes == 0:
        return f"{metric.name} needs labels; data set {info.name!r} has none"
    return None
