"""Checks that need the data: done when the grid is planned, before any training.

A metric or a model (built-in or a plugin author's) may define ``check_data(data: DataBundle) -> None``
and raise ``ValueError`` when its settings cannot apply to a data set, e.g. a held-out class the data
set does not have, a split name that does not exist, more labels per class than the training split
holds.  :func:`check_data` calls it for every (data set, metric) pair of a suite that the metric applies
to and every (data set, model) pair, and names the suite file, entry and data set in the error.
``benchbed validate SUITE`` runs it with everything else; ``benchbed run`` runs it before training.
"""

from __future__ import annotations

from collections.abc import Callable

from benchbed.contracts import DataBundle, declaration_problem, protocol_problem
from benchbed.errors import BenchbedError, SuiteError
from benchbed.grid import data_incompatibility, plan
from benchbed.registry import Registry
from benchbed.suite import Entry, Suite
from benchbed.training import device_problem


def check_data(suite: Suite, registry: Registry, load: Callable[[Entry, int], DataBundle], *,
               strict_loading: bool = False) -> None:
    """Raise :class:`SuiteError` for the first metric setting that cannot apply to a data set of ``suite``.

    ``load(entry, seed)`` loads a data set (the runner's cached loader).  A data set that fails to load
    is an error with ``strict_loading`` (``benchbed validate``); otherwise its cells record the failure.
    """
    where = str(suite.path) if suite.path else "<suite>"
    for dataset in suite.datasets:
        try:
            data = load(dataset, suite.seeds[0])
        except Exception as exc:  # noqa: BLE001 - the loader's own error names the file at fault
            if strict_loading:
                raise SuiteError(f"{where}: [datasets.{dataset.label}] cannot be loaded: {exc}") from None
            continue
        for entry in suite.metrics:
            spec = registry.metric(entry.component)
            if entry.not_asked(dataset.label) or data_incompatibility(spec, data.info):
                continue
            _check_hook(spec.factory(**entry.params), data,
                        f"{where}: [metrics.{entry.label}] on data set {dataset.label!r}")
        for entry in suite.models:  # the same optional hook on models (e.g. labels a semi-supervised one needs)
            if entry.not_asked(dataset.label):
                continue
            try:
                model = registry.model(entry.component).factory(**entry.params)
            except Exception:  # noqa: BLE001 - a model that cannot be constructed is its cells' error
                continue
            _check_hook(model, data, f"{where}: [models.{entry.label}] on data set {dataset.label!r}")


def _check_hook(component: object, data: DataBundle, where: str) -> None:
    """``component.check_data(data)`` when it defines one; its ``ValueError`` becomes a :class:`SuiteError`
    prefixed with ``where`` (file, entry and data set)."""
    check = getattr(component, "check_data", None)
    if not callable(check):
        return
    try:
        check(data)
    except ValueError as exc:
        raise SuiteError(f"{where}: {exc}") from None


def check_models(suite: Suite, registry: Registry) -> None:
    """Raise :class:`SuiteError` for the first model entry whose declared capabilities are wrong
    (:func:`benchbed.contracts.declaration_problem`): a misspelt capability would silently make every
    metric n/a, a declared one without its method would fail each metric only after training; or that
    lacks a method the runner calls (:func:`benchbed.contracts.protocol_problem`), which would fail
    the cell only after training, when its checkpoint is saved.  A
    component constructs without doing work, so this is checked before anything trains; one that cannot
    be constructed yet is left to its cells, which record the error."""
    where = str(suite.path) if suite.path else "<suite>"
    for entry in suite.models:
        spec = registry.model(entry.component)
        try:
            model = spec.factory(**entry.params)
        except Exception:  # noqa: BLE001 - the cell's setup reports it, with the cell
            continue
        if problem := declaration_problem(model) or protocol_problem(model, spec.one_shot):
            prov = registry.get("model", entry.component).provenance
            raise SuiteError(f"{where}: [models.{entry.label}]: model {entry.component!r} (plugin {prov.plugin!r}, "
                             f"{prov.distribution} {prov.version}) {problem}")


def validate(suite: Suite, registry: Registry, load: Callable[[Entry, int], DataBundle]) -> list[str]:
    """Everything ``benchbed run`` would check, training nothing; returns a summary line per check.

    Raises:
        BenchbedError: the first problem found (the suite file itself was checked when it was loaded).
    """
    cells, notes = plan(suite, registry)
    if not cells:
        raise BenchbedError(f"suite {suite.name!r} plans no cell")
    if problem := device_problem(suite.device):
        raise SuiteError(f"{suite.path or '<suite>'}: device {suite.device!r}: {problem}")
    check_models(suite, registry)
    check_data(suite, registry, load, strict_loading=True)
    return [f"suite {suite.name}: {len(cells)} cells, {len(suite.datasets)} data set(s) loaded and checked, "
            f"{len(suite.metrics)} metric(s)", *notes]


def loader(registry: Registry) -> Callable[[Entry, int], DataBundle]:
    """``load(entry, seed)``: a data set entry loaded once per (settings, seed) in this process."""
    from benchbed.suite import config_hash

    cache: dict[tuple[str, int], DataBundle] = {}

    def load(entry: Entry, seed: int) -> DataBundle:
        key = (config_hash(entry.identity()), seed)
        if key not in cache:
            cache[key] = registry.load_dataset(entry.component, entry.params, seed)
        return cache[key]

    return load
