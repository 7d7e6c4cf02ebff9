"""Model-free reference rows (the true log-likelihood of synthetic data, a logistic-regression
baseline): computed by the metrics that define ``references`` and stored once per (data set, seed)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from benchbed.contracts import DataBundle
from benchbed.evaluation import metric_row
from benchbed.grid import data_incompatibility
from benchbed.registry import Registry
from benchbed.store import Store
from benchbed.suite import Entry, Suite, config_hash
from benchbed.training import seed_everything


def store_references(suite: Suite, registry: Registry, store: Store,
                     load: Callable[[Entry, int], DataBundle]) -> int:
    """Store the reference rows of ``suite``'s metrics not in ``store`` yet; returns how many were added.

    ``load(entry, seed)`` loads a data set; one that fails to load is skipped (its cells record the
    error).  A metric that does not apply to a data set (:func:`benchbed.grid.data_incompatibility`)
    gives it no reference rows.  The global RNGs are seeded with the cell seed before each metric's
    ``references``, which also gets the seed when it takes a ``seed`` keyword.
    """
    added = 0
    for dataset in suite.datasets:
        for seed in suite.seeds:
            for entry in suite.metrics:
                spec = registry.metric(entry.component)
                metric = spec.factory(**entry.params)
                if not callable(getattr(metric, "references", None)):
                    continue
                try:
                    data = load(dataset, seed)
                except Exception:  # noqa: BLE001 - the data set's cells record the error
                    continue
                if entry.not_asked(dataset.label) or data_incompatibility(spec, data.info):
                    continue
                seed_everything(seed)
                takes_seed = "seed" in inspect.signature(metric.references).parameters
                refs = metric.references(data, seed=seed) if takes_seed else metric.references(data)
                for ref in refs:
                    config = {"reference": ref.label, "metric": entry.identity(), "dataset": dataset.identity(),
                              "seed": seed}
                    ident = {"suite": suite.name, "model": ref.label, "model_component": "", "sampler": "",
                             "dataset": dataset.label, "seed": seed, "config": config}
                    run_id = config_hash(config)
                    if store.status(run_id) == "ok" and entry.label in store.metric_hashes(run_id):
                        continue
                    store.put_reference(run_id, ident, metric_row(entry, "ok", ref.result))
                    added += 1
    return added
