"""Every registered component passes benchbed's conformance checks, with its spec's ``test_params``.

The component lists come from the registry (built-ins and any installed third-party plugin alike), so a
new component is checked without editing this file.  Models run on ``gmm8`` (2-D, labelled: the density
checks need 1-D/2-D data); each metric runs on the first registered model it applies to (``vae`` first),
on ``gmm8`` or, for image-only metrics, ``digits``.  A check that cannot run here (a data set whose files
are not present, FID without its weights) is skipped with the component's own reason.
"""

from __future__ import annotations

import pytest
import torch

from benchbed.errors import DataError, NotApplicable
from benchbed.grid import incompatibility
from benchbed.registry import Registry
from benchbed.testing import (
    build_model,
    check_dataset,
    check_metric,
    check_model,
    check_sampler,
    load_dataset,
    load_registry_strict,
)

REGISTRY: Registry = load_registry_strict()
MODEL_DATA = "gmm8"
PREFERRED_MODELS = ("vae",)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: the checks use tiny networks, and other tests may share the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", REGISTRY.names("model"))
def test_model(name: str) -> None:
    check_model(name, dataset=MODEL_DATA, registry=REGISTRY)


@pytest.mark.parametrize("name", REGISTRY.names("sampler"))
def test_sampler(name: str) -> None:
    check_sampler(name, registry=REGISTRY)


@pytest.mark.parametrize("name", REGISTRY.names("dataset"))
def test_dataset(name: str) -> None:
    try:
        check_dataset(name, registry=REGISTRY)
    except DataError as exc:
        pytest.skip(f"dataset {name!r} cannot load here: {' '.join(str(exc).split())}")


def _metric_case(name: str) -> tuple[str, str]:
    """(model, data set) for a metric: the first registered model it applies to, ``vae`` first."""
    spec = REGISTRY.metric(name)
    dataset = MODEL_DATA if "vector" in spec.data_kinds else "digits"
    info = load_dataset(dataset, registry=REGISTRY, **REGISTRY.dataset(dataset).test_params).info
    names = list(PREFERRED_MODELS) + [m for m in REGISTRY.names("model") if m not in PREFERRED_MODELS]
    for model in names:
        if model not in REGISTRY.names("model"):
            continue
        mspec = REGISTRY.model(model)
        caps = {str(c) for c in build_model(model, mspec.test_params, REGISTRY).capabilities}
        if incompatibility(spec, caps, info) is None:
            return model, dataset
    pytest.skip(f"metric {name!r}: no registered model it applies to on {dataset!r}")


@pytest.mark.parametrize("name", REGISTRY.names("metric"))
def test_metric(name: str) -> None:
    model, dataset = _metric_case(name)
    try:
        result = check_metric(name, registry=REGISTRY, model=model, dataset=dataset)
    except NotApplicable as exc:
        pytest.skip(f"metric {name!r} does not apply here: {exc}")
    assert result is not None
