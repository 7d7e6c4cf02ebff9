"""Conformance checks and test helpers for plugin authors (like scikit-learn's ``check_estimator``).

A third-party component passes the same checks as the built-ins::

    from benchbed.testing import check_model
    check_model("my_model", dataset="gmm8")

Every helper goes through the registry, i.e. through the same plugin path the runner uses.  The checks
run each component with its spec's ``test_params`` (small sizes, see :class:`benchbed.specs.ComponentSpec`)
unless parameters are passed explicitly, and they check meaning, not only shapes: a model's densities
must be normalised where the contract says so (by quadrature on 1-D/2-D data), ``log_likelihood`` must
agree with an importance-sampling estimate built from ``log_joint`` and ``proposal``, a sampler must leave
a known Gaussian invariant.  Every failure is an ``AssertionError`` whose message names the component and,
for models, the capability (method) at fault.  The contracts checked are those of
``docs/architecture.md#contracts``.
"""

from __future__ import annotations

import inspect
import math
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import Distribution

from benchbed.contracts import (
    Budget,
    DataBundle,
    DatasetInfo,
    EvalContext,
    MetricResult,
    ReferenceRow,
    SampleResult,
    declaration_problem,
    protocol_problem,
)
from benchbed.errors import DataContractError, NotApplicable
from benchbed.grid import incompatibility
from benchbed.params import resolve
from benchbed.plugins import load_registry
from benchbed.registry import Registry
from benchbed.sampling import BoundSampler
from benchbed.specs import ComponentSpec, MetricSpec
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


def _or_test_params(spec: ComponentSpec, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``given`` when passed (even empty), else the spec's ``test_params``."""
    return dict(spec.test_params) if given is None else dict(given)


def load_dataset(name: str, *, seed: int = 0, registry: Registry | None = None, **params: Any) -> DataBundle:
    """Load a registered data set with ``params`` (validated against its factory signature)."""
    reg = _registry(registry)
    values = resolve(reg.dataset(name).factory, params, what=f"dataset {name!r}")
    return reg.load_dataset(name, values, seed)


def build_model(name: str, params: Mapping[str, Any] | None = None, registry: Registry | None = None) -> Any:
    """Construct a registered model (not set up) with validated ``params``."""
    spec = _registry(registry).model(name)
    return spec.factory(**resolve(spec.factory, params or {}, what=f"model {name!r}"))


@dataclass(frozen=True)
class _FitConfig:
    name: str
    params: Mapping[str, Any]
    steps: int | None
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
    steps: int | None = None,
    batch_size: int = 100,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    sampler: str | None = None,
    sampler_params: Mapping[str, Any] | None = None,
    roles: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "cpu",
    registry: Registry | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Build, set up and train a registered model as the runner does.

    A model declared ``one_shot`` (:attr:`benchbed.specs.ModelSpec.one_shot`) is set up and then fitted
    by one call ``model.fit(bundle.train)``; ``steps`` does not apply to it.  Any other model runs the
    runner's training loop for ``steps`` steps (required).

    Returns:
        ``(model, history)`` where history lists the recorded loss dicts (at most ~200 points; empty
        for a one-shot model).

    Raises:
        ValueError: ``steps`` missing for a model trained by steps.
    """
    reg = _registry(registry)
    one_shot = reg.model(name).one_shot
    if steps is None and not one_shot:
        raise ValueError(f"fit: model {name!r} is trained by steps; pass steps=")
    model = build_model(name, params, reg)
    dev = resolve_device(device)
    budget = Budget(steps=steps or 0, batch_size=batch_size)
    provider = bound_sampler(name, sampler, sampler_params, roles, reg)
    setup_model(model, bundle, budget, seed=seed, device=dev, sampler=provider)
    hist: History = train(model, bundle, budget, seed=seed, device=dev, one_shot=one_shot)
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
    """Evaluate a registered metric with validated ``settings``, as the runner would.

    Raises:
        NotApplicable: the metric's spec excludes this model or data set (the reason the runner would
            store, from :func:`benchbed.grid.incompatibility`), or the metric itself declines.
    """
    spec = _registry(registry).metric(name)
    metric = spec.factory(**resolve(spec.factory, settings, what=f"metric {name!r}"))
    # The runner decides n/a from the spec before calling evaluate; so does this harness, so metrics
    # never need to re-check what their spec declares.
    if reason := incompatibility(spec, frozenset(getattr(ctx.model, "capabilities", ())), ctx.data.info):
        raise NotApplicable(reason)
    with torch.no_grad():
        return metric.evaluate(ctx)


# ----------------------------------------------------------------------------------------------
# Conformance checks
#
# Every check raises AssertionError naming the component ("model 'vae'") and, for models, the
# capability at fault by its method ("proposal()").  Tolerances of the semantic checks are stated
# where they are defined, with the reason for their size.

#: Draws per example of the IWAE estimate that ``log_likelihood`` is compared with.
IWAE_DRAWS = 1000
#: How far (nats) one example's IWAE estimate may lie *above* ``log_likelihood``.  The importance weights
#: average to p(x) in expectation, so by Markov's inequality P(IWAE >= log p(x) + t) <= exp(-t): with
#: t = 10 a correct model fails with probability below 5e-5 per example (and the draws are seeded).
IWAE_ABOVE_NATS = 10.0
#: How far (nats) the IWAE estimate may lie *below* ``log_likelihood`` on average over the examples.  The
#: gap of a K-draw estimate shrinks like Var(w) / (2 K); with K = 1000 only a proposal that misses the
#: posterior almost entirely leaves a gap this large, while a shifted or mis-scaled ``log_likelihood``
#: (the fault this side is for) moves it by the whole shift.
IWAE_BELOW_NATS = 10.0
#: Allowed |integral - 1| of a density claimed to be normalised, by quadrature.  The midpoint rule on the
#: zoomed grid is far more accurate than this for densities the grid resolves; 2% leaves room for float32
#: evaluation and for tail mass cut off by the grid.
NORMALISATION_TOLERANCE = 0.02
#: The quadrature grid is zoomed to the cells whose log-density lies within this many nats of the
#: maximum, so the mass it cuts off is below exp(-25) per cell relative to the peak's.
_QUADRATURE_DROP = 25.0
#: Latent codes (one integral each) at which ``log_joint`` is checked to be normalised in x.
_NORMALISATION_CODES = 3
#: Chains of the sampler invariance check (independent, so the Monte Carlo error is that of iid draws).
SAMPLER_CHAINS = 4000
#: Standard errors the sampler check allows on means, variances and the covariance.
_SAMPLER_SE = 5.0
#: Extra relative allowance on second moments for unadjusted samplers: Langevin with step s on a Gaussian
#: of variance v has stationary variance v / (1 - s^2 / (4 v)), i.e. +4.5% at s = 0.25 on the target's
#: smallest variance (about 0.36).
_SAMPLER_BIAS = 0.05
#: The Gaussian every sampler must leave invariant: 2-D and correlated.
_GAUSS_MEAN = (1.0, -0.5)
_GAUSS_COV = ((1.0, 0.3), (0.3, 0.5))


def check_factory_schema(spec: ComponentSpec) -> None:
    """The factory's parameters are keyword-only, each with a default (the signature is the schema), and
    the spec's ``test_params`` are valid parameters of it."""
    sig = inspect.signature(spec.factory)
    for p in sig.parameters.values():
        assert p.kind is p.KEYWORD_ONLY, f"{spec.kind} {spec.name!r}: parameter {p.name!r} must be keyword-only"
        assert p.default is not p.empty, f"{spec.kind} {spec.name!r}: parameter {p.name!r} needs a default"
    if spec.test_params:
        try:
            resolve(spec.factory, dict(spec.test_params), what=f"{spec.kind} {spec.name!r}")
        except Exception as exc:
            raise AssertionError(f"{spec.kind} {spec.name!r}: invalid test_params: {exc}") from exc


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with the global torch RNG seeded; the caller's RNG state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# -- quadrature ------------------------------------------------------------------------------------


def _midpoint_grid(lo: torch.Tensor, hi: torch.Tensor, m: int) -> tuple[torch.Tensor, float]:
    """Cell centres ``[m**d, d]`` (float64) of an m-per-axis grid over the box, and one cell's volume."""
    h = (hi - lo) / m
    axes = [lo[i] + h[i] * (torch.arange(m, dtype=torch.float64) + 0.5) for i in range(lo.numel())]
    points = torch.cartesian_prod(*axes) if len(axes) > 1 else axes[0][:, None]
    return points, float(h.prod())


def _evaluate(log_f: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """``log_f`` at ``points`` [G, d] (passed as float32, in chunks), as float64 [G]."""
    return torch.cat([log_f(chunk.float()).double().reshape(-1) for chunk in points.split(16384)])


def integrate_density(
    log_f: Callable[[torch.Tensor], torch.Tensor],
    lo: Sequence[float],
    hi: Sequence[float],
    *,
    what: str = "density",
) -> float:
    """``∫ exp(log_f(x)) dx`` over R^d, d = 1 or 2, by the midpoint rule on an adaptive grid.

    ``log_f`` maps points ``[G, d]`` (float32) to log-densities ``[G]``.  The box ``[lo, hi]`` is a first
    guess: it is doubled until the log-density on its border lies ``_QUADRATURE_DROP`` nats below the
    maximum (at most 8 times), zoomed three times to the cells within that drop of the maximum (plus a
    margin of 1.5 cells), and the integral is taken there on a fine grid (4096 points for d = 1,
    256 x 256 for d = 2).

    Assumption: a coarse grid (256 points for d = 1, 64 x 64 for d = 2) of the current box sees every
    region holding mass; true for unimodal densities and for mixtures whose modes are not much narrower
    than one coarse cell.

    Raises:
        AssertionError: the log-density is NaN or nowhere finite, or does not decay within 256 times
            the first box; the message starts with ``what``.
    """
    low, high = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    d = low.numel()
    if d not in (1, 2):
        raise ValueError(f"integrate_density: dimension {d} not supported (1 or 2)")
    coarse, fine = (256, 4096) if d == 1 else (64, 256)
    index = torch.cartesian_prod(*[torch.arange(coarse)] * d).reshape(-1, d)
    on_border = ((index == 0) | (index == coarse - 1)).any(dim=1)

    def values_on(points: torch.Tensor) -> torch.Tensor:
        values = _evaluate(log_f, points)
        assert not torch.isnan(values).any(), f"{what}: NaN log-density on the quadrature grid"
        assert torch.isfinite(values.max()), f"{what}: log-density {float(values.max())} all over the grid"
        return values

    for _ in range(9):
        points, _ = _midpoint_grid(low, high, coarse)
        values = values_on(points)
        if values[on_border].max() < values.max() - _QUADRATURE_DROP:
            break
        centre, half = (low + high) / 2, high - low
        low, high = centre - half, centre + half
    else:
        raise AssertionError(f"{what}: the density does not decay within 256 times the data's box "
                             f"(still within {_QUADRATURE_DROP:g} nats of its maximum on the border)")
    for _ in range(3):
        cell = (high - low) / coarse
        keep = points[values > values.max() - _QUADRATURE_DROP]
        low = torch.maximum(low, keep.min(dim=0).values - 1.5 * cell)
        high = torch.minimum(high, keep.max(dim=0).values + 1.5 * cell)
        points, _ = _midpoint_grid(low, high, coarse)
        values = values_on(points)
    points, volume = _midpoint_grid(low, high, fine)
    values = values_on(points)
    return float(torch.exp(torch.logsumexp(values, dim=0) + math.log(volume)))


def _data_box(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """A first quadrature box: the data's range widened by its span on each side."""
    lo, hi = x.min(dim=0).values.double(), x.max(dim=0).values.double()
    span = (hi - lo).clamp(min=1e-3)
    return (lo - span).tolist(), (hi + span).tolist()


# -- data sets --------------------------------------------------------------------------------------


def check_dataset(name: str, registry: Registry | None = None, **params: Any) -> DataBundle:
    """Splits deterministic given the seed, shapes and scales as declared, labels in range, density finite.

    Without ``params`` the spec's ``test_params`` are used.
    """
    reg = _registry(registry)
    spec = reg.dataset(name)
    check_factory_schema(spec)
    values = params or dict(spec.test_params)
    try:
        a = load_dataset(name, seed=0, registry=reg, **values)
        b = load_dataset(name, seed=0, registry=reg, **values)
    except DataContractError as exc:  # the contract checks every load makes (Registry.load_dataset)
        raise AssertionError(f"dataset {name!r}: {exc}") from None
    assert a.content_hash() == b.content_hash(), f"dataset {name!r}: splits differ for the same seed"
    info = a.info
    # kinds, split shapes and dtypes, finiteness, image range and labels: checked by every load
    # (Registry.load_dataset raises DataContractError with each problem), so a loaded bundle has passed them.
    if info.has_density:
        assert a.log_prob is not None, f"dataset {name!r}: has_density but no log_prob"
        lp = a.log_prob(a.test.x[:64])
        assert lp.shape == (min(64, len(a.test)),) and torch.isfinite(lp).all(), f"dataset {name!r}: log_prob"
    if info.n_classes:
        variant = a.hold_out((0,))
        assert variant.train.y is not None and not (variant.train.y == 0).any()
    return a


# -- samplers ---------------------------------------------------------------------------------------


def _check_gaussian_invariance(name: str, sampler: Any) -> None:
    """Chains started from the target N(mu, Sigma) must still be distributed as N(mu, Sigma) after the
    sampler ran on its log-density: means, variances and the covariance within ``_SAMPLER_SE`` standard
    errors (plus ``_SAMPLER_BIAS`` on second moments); and at least one chain must have moved."""
    mu = torch.tensor(_GAUSS_MEAN)
    cov = torch.tensor(_GAUSS_COV)
    precision = torch.linalg.inv(cov)
    n = SAMPLER_CHAINS

    def log_density(z: torch.Tensor) -> torch.Tensor:
        r = z - mu
        return -0.5 * ((r @ precision) * r).sum(dim=1)

    with _seeded(0), torch.no_grad():
        z0 = mu + torch.randn(n, 2) @ torch.linalg.cholesky(cov).T
        result = sampler.sample(log_density, z0)
    z = result.z.double()
    who = f"sampler {name!r}"
    assert tuple(z.shape) == (n, 2) and torch.isfinite(z).all(), f"{who}: bad samples on a 2-D Gaussian"
    if float(result.diagnostics.get("steps", 1.0)) > 0:
        assert (result.z != z0).any(dim=1).any(), f"{who}: no chain moved on a 2-D Gaussian"
    c = cov.double()
    mean, emp = z.mean(dim=0), torch.cov(z.T)
    for i in range(2):
        se = math.sqrt(float(c[i, i]) / n)
        assert abs(float(mean[i] - mu[i])) <= _SAMPLER_SE * se, (
            f"{who} does not leave N(mu, Sigma) invariant: mean[{i}] = {float(mean[i]):.4f}, expected "
            f"{float(mu[i]):.4f} ± {_SAMPLER_SE * se:.4f} ({n} chains started from the target)")
        var = float(c[i, i])
        tol = var * (_SAMPLER_SE * math.sqrt(2.0 / n) + _SAMPLER_BIAS)
        assert abs(float(emp[i, i]) - var) <= tol, (
            f"{who} does not leave N(mu, Sigma) invariant: variance[{i}] = {float(emp[i, i]):.4f}, expected "
            f"{var:.4f} ± {tol:.4f} ({n} chains started from the target)")
    cov_se = math.sqrt(float(c[0, 0] * c[1, 1] + c[0, 1] ** 2) / n)
    tol = _SAMPLER_SE * cov_se + _SAMPLER_BIAS * abs(float(c[0, 1]))
    assert abs(float(emp[0, 1] - c[0, 1])) <= tol, (
        f"{who} does not leave N(mu, Sigma) invariant: covariance = {float(emp[0, 1]):.4f}, expected "
        f"{float(c[0, 1]):.4f} ± {tol:.4f} ({n} chains started from the target)")


def check_sampler(name: str, registry: Registry | None = None, **params: Any) -> SampleResult:
    """Runs under ``torch.no_grad()`` and ``torch.inference_mode()``, keeps shapes, reports diagnostics,
    and leaves a known 2-D Gaussian invariant (chains started from it stay distributed as it).

    Without ``params`` the spec's ``test_params`` are used.  Returns the result of the
    ``torch.no_grad()`` run on a standard normal (16 chains).
    """
    reg = _registry(registry)
    spec = reg.sampler(name)
    check_factory_schema(spec)
    values = params or dict(spec.test_params)

    def build() -> Any:
        return spec.factory(**resolve(spec.factory, values, what=f"sampler {name!r}"))

    def log_density(z: torch.Tensor) -> torch.Tensor:  # standard normal in 2-D
        return -0.5 * (z**2).sum(dim=1)

    first: SampleResult | None = None
    for ctx in (torch.no_grad, torch.inference_mode):
        try:
            with ctx():
                result = build().sample(log_density, torch.randn(16, 2))
        except Exception as exc:
            raise AssertionError(
                f"sampler {name!r} fails under torch.{ctx.__name__}() (metrics call samplers that way): "
                f"{type(exc).__name__}: {exc}. Enable gradients for z inside sample() with "
                "`with torch.inference_mode(False), torch.enable_grad():`") from exc
        assert isinstance(result, SampleResult), f"sampler {name!r} must return SampleResult"
        assert result.z.shape == (16, 2) and torch.isfinite(result.z).all(), f"sampler {name!r}: bad samples"
        for key in ("steps", "step_size", "final_log_density"):
            assert key in result.diagnostics, f"sampler {name!r}: diagnostics lack {key!r}"
        first = first or result
    _check_gaussian_invariance(name, build())
    assert first is not None
    return first


# -- models -----------------------------------------------------------------------------------------


def _declared_capabilities(name: str, model: Any) -> set[str]:
    """The model's declared capabilities as strings, each known and backed by its protocol's methods
    (:func:`benchbed.contracts.declaration_problem`)."""
    problem = declaration_problem(model)
    assert not problem, f"model {name!r} {problem}"
    return {str(c) for c in model.capabilities}


def _call(who: str, call: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; any exception other than an AssertionError becomes one naming ``who`` and ``call``."""
    try:
        return fn(*args)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{who}: {call} raised {type(exc).__name__}: {exc}") from exc


def _check_tensor(who: str, call: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> None:
    """``value`` is a finite floating tensor of ``shape`` (and ``dtype`` when given)."""
    assert isinstance(value, torch.Tensor), f"{who}: {call} returned {type(value).__name__}, not a tensor"
    assert tuple(value.shape) == tuple(shape), f"{who}: {call} shape {tuple(value.shape)}, expected {tuple(shape)}"
    if dtype is not None:
        assert value.dtype == dtype, f"{who}: {call} dtype {value.dtype}, expected {dtype}"
    else:
        assert value.is_floating_point(), f"{who}: {call} dtype {value.dtype} is not floating point"
    assert torch.isfinite(value).all(), f"{who}: {call} has non-finite values"


def _check_proposal(who: str, model: Any, x: torch.Tensor, latent: tuple[int, ...] | None) -> Distribution:
    """``proposal(x)`` is a Distribution over z: batch shape [B], event shape = the latent shape, and its
    draws and ``log_prob`` have the shapes the IWAE and AIS estimators rely on."""
    n = len(x)
    q = _call(who, "proposal()", model.proposal, x)
    assert isinstance(q, Distribution), \
        f"{who}: proposal() returned {type(q).__name__}, not a torch.distributions.Distribution"
    assert tuple(q.batch_shape) == (n,), (
        f"{who}: proposal() batch shape {tuple(q.batch_shape)} for {n} examples, expected ({n},): one "
        "distribution per example with the latent dimensions in the event shape (e.g. Independent(Normal, 1))")
    event = tuple(q.event_shape)
    if latent is not None:
        assert event == latent, f"{who}: proposal() event shape {event}, expected the latent shape {latent} of infer()"
    _check_tensor(who, "proposal().sample()", _call(who, "proposal().sample()", q.sample), (n, *event))
    if q.has_rsample:
        _check_tensor(who, "proposal().rsample()", _call(who, "proposal().rsample()", q.rsample), (n, *event))
    draws = _call(who, "proposal().sample((3,))", q.sample, (3,))
    _check_tensor(who, "proposal().sample((3,))", draws, (3, n, *event))
    _check_tensor(who, "proposal().log_prob(z)", _call(who, "proposal().log_prob(z)", q.log_prob, draws[0]), (n,))
    _check_tensor(who, "proposal().log_prob(z[3, B])",
                  _call(who, "proposal().log_prob(z[3, B])", q.log_prob, draws), (3, n))
    return q


def _check_iwae(who: str, model: Any, x: torch.Tensor, q: Distribution) -> None:
    """``log_likelihood(x)`` agrees with the IWAE estimate from ``log_joint`` and ``proposal`` (tolerances
    ``IWAE_ABOVE_NATS`` per example above, ``IWAE_BELOW_NATS`` on average below)."""
    n, k = len(x), IWAE_DRAWS
    zs = q.sample((k,))
    flat = zs.reshape(k * n, *zs.shape[2:])
    xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * n, *x.shape[1:])
    log_w = model.log_joint(xs, flat).reshape(k, n).double() - q.log_prob(zs).double()
    iwae = torch.logsumexp(log_w, dim=0) - math.log(k)
    exact = model.log_likelihood(x).double()
    above, below = float((iwae - exact).max()), float((exact - iwae).mean())
    assert above <= IWAE_ABOVE_NATS, (
        f"{who}: log_likelihood() lies {above:.3g} nats below an IWAE estimate ({k} draws of proposal() "
        f"weighted by log_joint()) on one example; IWAE is a lower bound in expectation, so log_likelihood "
        f"is too low or log_joint too high")
    assert below <= IWAE_BELOW_NATS, (
        f"{who}: log_likelihood() lies {below:.3g} nats above the IWAE estimate ({k} draws of proposal() "
        f"weighted by log_joint()) on average; allowed {IWAE_BELOW_NATS:g}: log_likelihood is too high "
        f"(not normalised?) or log_joint too low")


def _check_normalised(who: str, call: str, log_f: Callable[[torch.Tensor], torch.Tensor], data: torch.Tensor,
                      claim: str) -> None:
    """``exp(log_f)`` integrates to 1 over x within ``NORMALISATION_TOLERANCE`` (quadrature)."""
    lo, hi = _data_box(data)
    total = integrate_density(log_f, lo, hi, what=f"{who}: {call}")
    assert abs(total - 1.0) <= NORMALISATION_TOLERANCE, (
        f"{who}: {call} integrates to {total:.4g} over x, not 1 (quadrature on the data's 2-D/1-D space); "
        f"{claim}")


def _check_capabilities(name: str, model: Any, bundle: DataBundle) -> None:
    """Every declared capability, called under ``no_grad`` on 8 test examples: shapes, dtypes, finiteness
    and meaning (proposal's shapes, log_likelihood vs IWAE, normalisation of log p(x|z) and of
    log_likelihood on 1-D/2-D vector data).  Random draws are seeded; the caller's RNG state is kept."""
    who = f"model {name!r}"
    caps = _declared_capabilities(name, model)
    x = bundle.test.x[:8]
    n, shape = x.shape[0], tuple(x.shape[1:])
    low_dim = bundle.info.kind == "vector" and bundle.info.dim in (1, 2)
    with torch.no_grad(), _seeded(0):
        if "sample" in caps:
            _check_tensor(who, "sample()", _call(who, "sample()", model.sample, n), (n, *shape), torch.float32)
        if "reconstruct" in caps:
            _check_tensor(who, "reconstruct()", _call(who, "reconstruct()", model.reconstruct, x), (n, *shape),
                          torch.float32)
        z: torch.Tensor | None = None
        latent: tuple[int, ...] | None = None
        if "infer" in caps:
            z = _call(who, "infer()", model.infer, x)
            assert isinstance(z, torch.Tensor) and z.dim() >= 2, f"{who}: infer() must return a tensor [B, *Z]"
            latent = tuple(z.shape[1:])
            _check_tensor(who, "infer()", z, (n, *latent))
        if "log_prior" in caps:
            base = _call(who, "sample_prior_base()", model.sample_prior_base, n)
            assert isinstance(base, torch.Tensor) and base.dim() >= 2, \
                f"{who}: sample_prior_base() must return a tensor [n, *Z]"
            latent = latent or tuple(base.shape[1:])
            _check_tensor(who, "sample_prior_base()", base, (n, *latent))
            z = base if z is None else z
        q = _check_proposal(who, model, x, latent) if "proposal" in caps else None
        if q is not None and z is None:
            z = q.sample()
        if "log_joint" in caps:
            assert z is not None, f"{who}: log_joint() needs a latent code: declare infer, proposal or log_prior"
            _check_tensor(who, "log_joint()", _call(who, "log_joint()", model.log_joint, x, z), (n,))
        if "log_prior" in caps:
            assert z is not None
            _check_tensor(who, "log_prior()", _call(who, "log_prior()", model.log_prior, z), (n,))
        for method in ("anomaly_score", "log_likelihood"):
            if method in caps:
                _check_tensor(who, f"{method}()", _call(who, f"{method}()", getattr(model, method), x), (n,))
        if "classify" in caps:
            logits = _call(who, "classify()", model.classify, x)
            k = bundle.info.n_classes or (logits.shape[1] if isinstance(logits, torch.Tensor) and logits.dim() == 2
                                          else -1)
            _check_tensor(who, "classify()", logits, (n, k))
        if "log_partition" in caps:
            out = _call(who, "log_partition()", model.log_partition, 256)
            assert isinstance(out, tuple) and len(out) in (2, 3), \
                f"{who}: log_partition() must return (float, int) or (float, int, float), got {out!r}"
            value, count, *ess = out
            assert isinstance(value, float) and math.isfinite(value), \
                f"{who}: log_partition() estimate {value!r} must be a finite float"
            assert isinstance(count, int) and not isinstance(count, bool) and count > 0, \
                f"{who}: log_partition() sample count {count!r} must be a positive int"
            # (Σw)² / Σw² lies in [1, n]; a little slack for rounding.
            assert not ess or (isinstance(ess[0], float) and 1 - 1e-6 <= ess[0] <= count * (1 + 1e-6)), \
                f"{who}: log_partition() effective sample size {ess[0]!r} must be a float in [1, {count}]"
        # Meaning.  log_joint leaves out an EBM prior's log Z, so the IWAE comparison needs a model
        # without log_partition.
        if q is not None and {"log_likelihood", "log_joint"} <= caps and "log_partition" not in caps:
            _call(who, "log_likelihood() against IWAE of log_joint() and proposal()", _check_iwae, who, model, x, q)
        if low_dim and {"log_joint", "log_prior"} <= caps:
            assert z is not None
            for i in range(min(_NORMALISATION_CODES, n)):
                code = z[i : i + 1]

                def log_lik(points: torch.Tensor, code: torch.Tensor = code) -> torch.Tensor:
                    xs = points.reshape(len(points), *shape)
                    zs = code.expand(len(points), *code.shape[1:])
                    return model.log_joint(xs, zs) - model.log_prior(zs)

                _call(who, "log_joint() - log_prior() on a grid of x", _check_normalised, who,
                      "log_joint() - log_prior()", log_lik, bundle.train.x,
                      "the contract: log_joint(x, z) - log_prior(z) is log p(x|z), normalised in x")
        if low_dim and "log_likelihood" in caps:
            _call(who, "log_likelihood() on a grid of x", _check_normalised, who, "log_likelihood()",
                  lambda points: model.log_likelihood(points.reshape(len(points), *shape)),
                  bundle.train.x, "the contract: log_likelihood(x) is the exact log p(x)")


def _check_restored(name: str, model: Any, clone: Any, bundle: DataBundle) -> None:
    """The restored ``clone`` equals ``model``: the same state dict for ``nn.Module`` models, else the same
    outputs (under the same seed) of each deterministic-given-the-seed capability it has."""
    if isinstance(model, torch.nn.Module):
        for (k, a), (_, b) in zip(model.state_dict().items(), clone.state_dict().items(), strict=True):
            assert torch.equal(a, b), f"model {name!r}: checkpoint does not restore {k!r}"
        return
    x = bundle.test.x[:8]
    calls: dict[str, Callable[[Any], Any]] = {
        "log_likelihood": lambda m: m.log_likelihood(x),
        "infer": lambda m: m.infer(x),
        "reconstruct": lambda m: m.reconstruct(x),
        "sample": lambda m: m.sample(len(x)),
    }
    caps = {str(c) for c in model.capabilities}
    for cap, call in calls.items():
        if cap in caps:
            with torch.no_grad(), _seeded(1):
                a = call(model)
            with torch.no_grad(), _seeded(1):
                b = call(clone)
            assert torch.equal(a, b), f"model {name!r}: checkpoint does not restore the model ({cap}() differs)"


def _sampler_test_params(reg: Registry, model_name: str, sampler: str | None) -> dict[str, Any]:
    """The ``test_params`` of the sampler a model would get (empty for models without dynamics)."""
    mspec = reg.model(model_name)
    sname = sampler or mspec.default_sampler
    return dict(reg.sampler(sname).test_params) if mspec.uses_sampler and sname else {}


def check_model(
    name: str,
    *,
    dataset: str = "gmm8",
    params: Mapping[str, Any] | None = None,
    dataset_params: Mapping[str, Any] | None = None,
    steps: int = 3,
    sampler: str | None = None,
    sampler_params: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> Any:
    """Construction does no work; training returns finite float losses; every declared capability works
    under ``no_grad`` with the contract's shapes, dtypes and meaning; a checkpoint restores the exact state.

    ``params``, ``dataset_params`` and ``sampler_params`` default to the model's, the data set's and the
    sampler's ``test_params`` (pass ``{}`` for the factory defaults).  A model trained by steps runs
    ``steps`` steps; a ``one_shot`` model is fitted by one ``fit(train)`` call and may report zero
    parameters.  The density checks (normalisation by quadrature) run on 1-D/2-D vector data only, so
    check such models on ``gmm8`` (the default) or another 2-D data set too.

    Returns:
        The trained model.
    """
    reg = _registry(registry)
    spec = reg.model(name)
    check_factory_schema(spec)
    model_params = _or_test_params(spec, params)
    bundle = load_dataset(dataset, seed=0, registry=reg, **_or_test_params(reg.dataset(dataset), dataset_params))
    chain_params = _sampler_test_params(reg, name, sampler) if sampler_params is None else dict(sampler_params)
    fresh = build_model(name, model_params, reg)
    if isinstance(fresh, torch.nn.Module):
        assert sum(p.numel() for p in fresh.parameters()) == 0, \
            f"model {name!r}: the constructor built networks; build them in setup()"
    problem = protocol_problem(fresh, spec.one_shot)
    assert not problem, f"model {name!r} {problem}"
    model, history = fit(name, bundle, steps=steps, batch_size=32, params=model_params, sampler=sampler,
                         sampler_params=chain_params, registry=reg)
    if not spec.one_shot:
        assert history and all(isinstance(v, float) for v in history[-1].values()), f"model {name!r}: losses"
    _check_capabilities(name, model, bundle)
    assert callable(getattr(model, "n_parameters", None)), \
        f"model {name!r} has no n_parameters() (the tables' parameter count; benchbed.model.LatentModel has one)"
    n_params = model.n_parameters()
    assert isinstance(n_params, int) and (n_params > 0 or (spec.one_shot and n_params == 0)), \
        f"model {name!r}: n_parameters() = {n_params!r}"
    state = model.checkpoint()
    clone = build_model(name, model_params, reg)
    setup_model(clone, bundle, Budget(steps, 32), seed=1, device=torch.device("cpu"),
                sampler=bound_sampler(name, sampler, chain_params, registry=reg))
    clone.restore(state)
    _check_restored(name, model, clone, bundle)
    return model


# -- metrics ----------------------------------------------------------------------------------------


def _check_metric_result(name: str, spec: MetricSpec, result: Any) -> None:
    """A :class:`MetricResult` with a finite float value, dict settings, a declared estimator tag, a finite
    non-negative stderr and finite per-example values."""
    who = f"metric {name!r}"
    assert isinstance(result, MetricResult), f"{who}: evaluate() returned {type(result).__name__}, not MetricResult"
    assert isinstance(result.value, float | int) and math.isfinite(result.value), \
        f"{who}: value {result.value!r} must be a finite number"
    assert isinstance(result.settings, dict), f"{who}: settings must be a dict"
    if spec.estimators and result.estimator:
        assert result.estimator in spec.estimators, \
            f"{who}: estimator tag {result.estimator!r} not declared in MetricSpec.estimators"
    if result.stderr is not None:
        assert math.isfinite(result.stderr) and result.stderr >= 0, f"{who}: stderr {result.stderr!r}"
    if result.per_example is not None:
        per = torch.as_tensor(result.per_example, dtype=torch.float64)
        assert per.dim() == 1 and len(per) > 0 and torch.isfinite(per).all(), \
            f"{who}: per_example must be a non-empty 1-D sequence of finite values"


def _model_for_metric(reg: Registry, spec: MetricSpec, info: DatasetInfo) -> str | None:
    """A registered model ``spec`` (a metric's) applies to on data ``info``: ``vae`` when it does, else the
    first in registration order; ``None`` when none does."""
    names = sorted(reg.names("model"), key=lambda n: n != "vae")  # stable: registration order after vae
    for candidate in names:
        try:
            caps = frozenset(str(c) for c in build_model(candidate, _or_test_params(reg.model(candidate), None),
                                                         reg).capabilities)
        except Exception:  # noqa: BLE001 - a model that cannot be built is not a candidate
            continue
        if incompatibility(spec, caps, info) is None:
            return candidate
    return None


def check_metric(
    name: str,
    registry: Registry | None = None,
    *,
    model: str | None = "auto",
    dataset: str = "gmm8",
    model_params: Mapping[str, Any] | None = None,
    dataset_params: Mapping[str, Any] | None = None,
    steps: int = 3,
    **settings: Any,
) -> MetricResult | None:
    """The spec is complete, the metric builds and has ``evaluate``, and evaluated on ``model`` trained for
    ``steps`` steps on ``dataset`` it gives a well-formed result; its reference rows (if any) are
    well-formed too.

    ``model="auto"`` (the default) picks a registered model the metric applies to on ``dataset`` (``vae``
    first, then in registration order); ``model=None`` checks the spec and the constructor only and
    evaluates nothing.  ``settings``, ``model_params`` and ``dataset_params`` default to the specs'
    ``test_params``.  A metric that cannot apply raises :class:`benchbed.errors.NotApplicable`, which
    propagates (e.g. FID without local weights).

    Returns:
        The evaluation's result (``None`` with ``model=None``).
    """
    reg = _registry(registry)
    spec = reg.metric(name)
    check_factory_schema(spec)
    assert isinstance(spec.higher_is_better, bool), f"metric {name!r}: higher_is_better must be a bool"
    values = settings or dict(spec.test_params)
    metric = spec.factory(**resolve(spec.factory, values, what=f"metric {name!r}"))
    assert callable(getattr(metric, "evaluate", None)), f"metric {name!r}: no evaluate()"
    refs = getattr(metric, "references", None)
    assert refs is None or callable(refs), f"metric {name!r}: references must be callable"
    if model is None:
        return None
    bundle = load_dataset(dataset, seed=0, registry=reg, **_or_test_params(reg.dataset(dataset), dataset_params))
    if model == "auto":
        model = _model_for_metric(reg, spec, bundle.info)
        if model is None:
            raise AssertionError(f"metric {name!r}: no registered model applies to it on data set {dataset!r}; "
                                 "pass model= (and dataset=) to check_metric")
    mspec = reg.model(model)
    fitted, _ = fit(model, bundle, steps=steps, batch_size=32, params=_or_test_params(mspec, model_params),
                    sampler_params=_sampler_test_params(reg, model, None), registry=reg)
    result = evaluate_metric(name, make_eval_context(fitted, bundle, registry=reg), registry=reg, **values)
    _check_metric_result(name, spec, result)
    if refs is not None:
        takes_seed = "seed" in inspect.signature(refs).parameters
        with torch.no_grad():
            rows = refs(bundle, seed=0) if takes_seed else refs(bundle)
        assert isinstance(rows, list) and all(isinstance(r, ReferenceRow) for r in rows), \
            f"metric {name!r}: references() must return a list of ReferenceRow"
        for row in rows:
            _check_metric_result(name, spec, row.result)
    return result


__all__ = [
    "IWAE_ABOVE_NATS",
    "IWAE_BELOW_NATS",
    "IWAE_DRAWS",
    "NORMALISATION_TOLERANCE",
    "SAMPLER_CHAINS",
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
    "integrate_density",
    "load_dataset",
    "load_registry_strict",
    "make_eval_context",
]
