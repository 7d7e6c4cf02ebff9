"""Conformance checks and test helpers for plugin authors (like scikit-learn's ``check_estimator``).

A third-party component passes the same checks as the built-ins::

    from benchbed.testing import check_model
    check_model("my_model", dataset="gmm8")

Every helper goes through the registry, i.e. through the same plugin path the runner uses.
"""

from __future__ import annotations

import inspect
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from benchbed.contracts import (
    Budget,
    Capability,
    DataBundle,
    EvalContext,
    MetricResult,
    SampleResult,
)
from benchbed.errors import NotApplicable
from benchbed.params import resolve
from benchbed.plugins import load_registry
from benchbed.registry import Registry
from benchbed.sampling import BoundSampler
from benchbed.specs import ComponentSpec
from benchbed.training import History, nested_training, resolve_device, setup_model, train

_REGISTRY: Registry | None = None


def load_registry_strict() -> Registry:
    """All installed plugins, loaded in strict mode (cached for the test session)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry(strict=True)
    return _REGISTRY


def _registry(registry: Registry | None) -> Registry:
    return registry if registry is not None else load_registry_strict()


def load_dataset(name: str, *, seed: int = 0, registry: Registry | None = None, **params: Any) -> DataBundle:
    """Load a registered data set with ``params`` (validated against its factory signature)."""
    spec = _registry(registry).dataset(name)
    values = resolve(spec.factory, params, what=f"dataset {name!r}")
    return spec.factory(**values).load(seed=seed)


def build_model(name: str, params: Mapping[str, Any] | None = None, registry: Registry | None = None) -> Any:
    """Construct a registered model (not set up) with validated ``params``."""
    spec = _registry(registry).model(name)
    return spec.factory(**resolve(spec.factory, params or {}, what=f"model {name!r}"))


@dataclass(frozen=True)
class _FitConfig:
    name: str
    params: Mapping[str, Any]
    steps: int
    batch_size: int
    seed: int
    sampler: str | None
    sampler_params: Mapping[str, Any]
    roles: Mapping[str, Mapping[str, Any]]
    device: str


_FIT_CONFIGS: weakref.WeakKeyDictionary[Any, _FitConfig] = weakref.WeakKeyDictionary()


def bound_sampler(
    model_name: str,
    sampler: str | None,
    sampler_params: Mapping[str, Any] | None = None,
    roles: Mapping[str, Mapping[str, Any]] | None = None,
    registry: Registry | None = None,
) -> BoundSampler | None:
    """The sampler provider a model gets: ``sampler`` or the model's default; ``None`` without dynamics."""
    reg = _registry(registry)
    mspec = reg.model(model_name)
    if not mspec.uses_sampler:
        return None
    sname = sampler or mspec.default_sampler
    assert sname is not None
    return BoundSampler(reg.sampler(sname), dict(sampler_params or {}), {k: dict(v) for k, v in (roles or {}).items()})


def fit(
    name: str,
    bundle: DataBundle,
    *,
    steps: int,
    batch_size: int = 100,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    sampler: str | None = None,
    sampler_params: Mapping[str, Any] | None = None,
    roles: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "cpu",
    registry: Registry | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Build, set up and train a registered model with the runner's training loop.

    Returns:
        ``(model, history)`` where history lists the recorded loss dicts (at most ~200 points).
    """
    model = build_model(name, params, registry)
    dev = resolve_device(device)
    budget = Budget(steps=steps, batch_size=batch_size)
    provider = bound_sampler(name, sampler, sampler_params, roles, registry)
    setup_model(model, bundle, budget, seed=seed, device=dev, sampler=provider)
    hist: History = train(model, bundle, budget, seed=seed, device=dev)
    _FIT_CONFIGS[model] = _FitConfig(
        name, dict(params or {}), steps, batch_size, seed, sampler, dict(sampler_params or {}),
        {k: dict(v) for k, v in (roles or {}).items()}, device,
    )
    return model, hist.points


def make_eval_context(
    model: Any, bundle: DataBundle, *, seed: int = 0, registry: Registry | None = None
) -> EvalContext:
    """An :class:`EvalContext` whose ``train_variant`` re-fits the configuration ``fit`` used for ``model``."""
    cfg = _FIT_CONFIGS.get(model)
    cache: dict[str, Any] = {}

    def train_variant(variant: DataBundle) -> Any:
        if cfg is None:
            raise RuntimeError("make_eval_context: model was not produced by benchbed.testing.fit")
        key = f"variant:{variant.content_hash()}"
        if key not in cache:
            with nested_training(resolve_device(cfg.device)):
                cache[key] = fit(
                    cfg.name, variant, steps=cfg.steps, batch_size=cfg.batch_size, seed=cfg.seed,
                    params=cfg.params, sampler=cfg.sampler, sampler_params=cfg.sampler_params, roles=cfg.roles,
                    device=cfg.device, registry=registry,
                )[0]
        return cache[key]

    device = next((p.device for p in model.parameters()), torch.device("cpu")) if hasattr(model, "parameters") \
        else torch.device("cpu")
    return EvalContext(model=model, data=bundle, device=device, seed=seed, train_variant=train_variant)


def evaluate_metric(name: str, ctx: EvalContext, registry: Registry | None = None, **settings: Any) -> MetricResult:
    """Evaluate a registered metric with validated ``settings``."""
    spec = _registry(registry).metric(name)
    metric = spec.factory(**resolve(spec.factory, settings, what=f"metric {name!r}"))
    with torch.no_grad():
        return metric.evaluate(ctx)


# ----------------------------------------------------------------------------------------------
# Conformance checks


def check_factory_schema(spec: ComponentSpec) -> None:
    """The factory's parameters are keyword-only, each with a default (the signature is the schema)."""
    sig = inspect.signature(spec.factory)
    for p in sig.parameters.values():
        assert p.kind is p.KEYWORD_ONLY, f"{spec.kind} {spec.name!r}: parameter {p.name!r} must be keyword-only"
        assert p.default is not p.empty, f"{spec.kind} {spec.name!r}: parameter {p.name!r} needs a default"


def check_dataset(name: str, registry: Registry | None = None, **params: Any) -> DataBundle:
    """Splits deterministic given the seed, shapes and scales as declared, labels in range, density finite."""
    reg = _registry(registry)
    check_factory_schema(reg.dataset(name))
    a = load_dataset(name, seed=0, registry=reg, **params)
    b = load_dataset(name, seed=0, registry=reg, **params)
    assert a.content_hash() == b.content_hash(), f"dataset {name!r}: splits differ for the same seed"
    info = a.info
    assert info.kind in {"vector", "image"}, f"dataset {name!r}: kind {info.kind!r}"
    for split_name in ("train", "val", "test"):
        split = getattr(a, split_name)
        assert len(split) > 0, f"dataset {name!r}: empty {split_name} split"
        assert split.x.dtype == torch.float32, f"dataset {name!r}: {split_name}.x dtype {split.x.dtype}"
        assert tuple(split.x.shape[1:]) == info.shape, f"dataset {name!r}: {split_name} shape {tuple(split.x.shape)}"
        assert torch.isfinite(split.x).all(), f"dataset {name!r}: non-finite values in {split_name}"
        if info.kind == "image":
            assert split.x.min() >= 0 and split.x.max() <= 1, f"dataset {name!r}: images outside [0, 1]"
        if info.n_classes:
            assert split.y is not None and split.y.dtype == torch.int64, f"dataset {name!r}: labels int64"
            assert 0 <= int(split.y.min()) and int(split.y.max()) < info.n_classes, f"dataset {name!r}: label range"
    if info.has_density:
        assert a.log_prob is not None, f"dataset {name!r}: has_density but no log_prob"
        lp = a.log_prob(a.test.x[:64])
        assert lp.shape == (min(64, len(a.test)),) and torch.isfinite(lp).all(), f"dataset {name!r}: log_prob"
    if info.n_classes:
        variant = a.hold_out((0,))
        assert variant.train.y is not None and not (variant.train.y == 0).any()
    return a


def check_sampler(name: str, registry: Registry | None = None, **params: Any) -> SampleResult:
    """Runs under ``torch.no_grad()`` and ``torch.inference_mode()``, keeps shapes, reports diagnostics."""
    reg = _registry(registry)
    spec = reg.sampler(name)
    check_factory_schema(spec)
    sampler = spec.factory(**resolve(spec.factory, params, what=f"sampler {name!r}"))

    def log_density(z: torch.Tensor) -> torch.Tensor:  # standard normal in 2-D
        return -0.5 * (z**2).sum(dim=1)

    result = None
    for ctx in (torch.no_grad, torch.inference_mode):
        try:
            with ctx():
                result = sampler.sample(log_density, torch.randn(16, 2))
        except Exception as exc:
            raise AssertionError(
                f"sampler {name!r} fails under torch.{ctx.__name__}() (metrics call samplers that way): "
                f"{type(exc).__name__}: {exc}. Enable gradients for z inside sample() with "
                "`with torch.inference_mode(False), torch.enable_grad():`") from exc
        assert isinstance(result, SampleResult), f"sampler {name!r} must return SampleResult"
        assert result.z.shape == (16, 2) and torch.isfinite(result.z).all(), f"sampler {name!r}: bad samples"
        for key in ("steps", "step_size", "final_log_density"):
            assert key in result.diagnostics, f"sampler {name!r}: diagnostics lack {key!r}"
    assert result is not None
    return result


_CAPABILITY_CALLS = {
    Capability.SAMPLE: "sample",
    Capability.INFER: "infer",
    Capability.RECONSTRUCT: "reconstruct",
    Capability.LOG_JOINT: "log_joint",
    Capability.LOG_PRIOR: "log_prior",
    Capability.LOG_PARTITION: "log_partition",
    Capability.PROPOSAL: "proposal",
    Capability.ANOMALY_SCORE: "anomaly_score",
    Capability.CLASSIFY: "classify",
    Capability.LOG_LIKELIHOOD: "log_likelihood",
}


def _check_capabilities(name: str, model: Any, bundle: DataBundle) -> None:
    caps = set(model.capabilities)
    known = {c.value for c in Capability}
    assert caps <= known, f"model {name!r}: unknown capabilities {sorted(caps - known)}"
    for cap in caps:
        assert callable(getattr(model, _CAPABILITY_CALLS[Capability(cap)], None)), \
            f"model {name!r} declares {cap!r} but has no method {_CAPABILITY_CALLS[Capability(cap)]}()"
    x = bundle.test.x[:8]
    n, shape = x.shape[0], tuple(x.shape[1:])
    with torch.no_grad():
        if "sample" in caps:
            s = model.sample(n)
            assert tuple(s.shape) == (n, *shape) and torch.isfinite(s).all(), f"model {name!r}: sample() shape"
        if "reconstruct" in caps:
            r = model.reconstruct(x)
            assert tuple(r.shape) == (n, *shape) and torch.isfinite(r).all(), f"model {name!r}: reconstruct()"
        z = model.infer(x) if "infer" in caps else None
        if z is not None:
            assert z.shape[0] == n and torch.isfinite(z).all(), f"model {name!r}: infer()"
            if "log_joint" in caps:
                lj = model.log_joint(x, z)
                assert lj.shape == (n,) and torch.isfinite(lj).all(), f"model {name!r}: log_joint() shape"
            if "log_prior" in caps:
                lp = model.log_prior(z)
                assert lp.shape == (n,) and torch.isfinite(lp).all(), f"model {name!r}: log_prior() shape"
                assert callable(getattr(model, "sample_prior_base", None)), \
                    f"model {name!r} declares log_prior but has no sample_prior_base(n)"
                base = model.sample_prior_base(n)
                assert tuple(base.shape) == tuple(z.shape), f"model {name!r}: sample_prior_base() shape"
        for cap, method in (("anomaly_score", "anomaly_score"), ("log_likelihood", "log_likelihood")):
            if cap in caps:
                v = getattr(model, method)(x)
                assert v.shape == (n,) and torch.isfinite(v).all(), f"model {name!r}: {method}() shape"
        if "classify" in caps:
            logits = model.classify(x)
            assert logits.shape[0] == n and logits.dim() == 2, f"model {name!r}: classify() shape"
        if "log_partition" in caps:
            value, count = model.log_partition(256)
            assert math.isfinite(float(value)) and int(count) > 0, f"model {name!r}: log_partition()"


def check_model(
    name: str,
    *,
    dataset: str = "gmm8",
    params: Mapping[str, Any] | None = None,
    dataset_params: Mapping[str, Any] | None = None,
    steps: int = 3,
    sampler: str | None = None,
    registry: Registry | None = None,
) -> Any:
    """Construction does no work; training steps return finite floats; every declared capability works
    with the right shapes under ``no_grad``; a checkpoint restores the exact state."""
    reg = _registry(registry)
    check_factory_schema(reg.model(name))
    bundle = load_dataset(dataset, seed=0, registry=reg, **dict(dataset_params or {}))
    fresh = build_model(name, params, reg)
    if isinstance(fresh, torch.nn.Module):
        assert sum(p.numel() for p in fresh.parameters()) == 0, \
            f"model {name!r}: the constructor built networks; build them in setup()"
    model, history = fit(name, bundle, steps=steps, batch_size=32, params=params, sampler=sampler, registry=reg)
    assert history and all(isinstance(v, float) for v in history[-1].values()), f"model {name!r}: losses"
    _check_capabilities(name, model, bundle)
    n_params = model.n_parameters()
    assert isinstance(n_params, int) and n_params > 0, f"model {name!r}: n_parameters() = {n_params!r}"
    state = model.checkpoint()
    clone = build_model(name, params, reg)
    setup_model(clone, bundle, Budget(steps, 32), seed=1, device=torch.device("cpu"),
                sampler=bound_sampler(name, sampler, registry=reg))
    clone.restore(state)
    if isinstance(model, torch.nn.Module):
        for (k, a), (_, b) in zip(model.state_dict().items(), clone.state_dict().items(), strict=True):
            assert torch.equal(a, b), f"model {name!r}: checkpoint does not restore {k!r}"
    return model


def check_metric(name: str, registry: Registry | None = None, **settings: Any) -> None:
    """The spec is complete and the metric builds from its defaults and has ``evaluate``."""
    reg = _registry(registry)
    spec = reg.metric(name)
    check_factory_schema(spec)
    assert isinstance(spec.higher_is_better, bool), f"metric {name!r}: higher_is_better must be a bool"
    metric = spec.factory(**resolve(spec.factory, settings, what=f"metric {name!r}"))
    assert callable(getattr(metric, "evaluate", None)), f"metric {name!r}: no evaluate()"
    refs = getattr(metric, "references", None)
    assert refs is None or callable(refs), f"metric {name!r}: references must be callable"


__all__ = [
    "NotApplicable",
    "bound_sampler",
    "build_model",
    "check_dataset",
    "check_factory_schema",
    "check_metric",
    "check_model",
    "check_sampler",
    "evaluate_metric",
    "fit",
    "load_dataset",
    "load_registry_strict",
    "make_eval_context",
]
