"""Declared parameter ranges (annotated-types metadata): refused when the suite loads, before any training.

Through the real suite loader with the built-in registry: each out-of-range value gives one exact
message naming the file, the component, the key (and the element), the line, the range and the value.
No ``from __future__ import annotations`` here: the third-party factory's annotations are real objects.
"""

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from annotated_types import Ge, Gt, Interval, Le, Len, Lt, MaxLen, MinLen, MultipleOf, Predicate

from benchbed import MetricSpec, ModelSpec, hookimpl
from benchbed.errors import SuiteError
from benchbed.params import AllowInf, Param, check_value, resolve, schema
from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.suite import Suite, parse_suite

PATH = Path("suite.toml")
HEADER = 'name = "t"\nseeds = [0]\n[budget]\nsteps = 1\nbatch_size = 1\n[datasets.gmm8]\n'  # 6 lines
AXES = {"models": "[models.vae]\n", "metrics": "[metrics.recon_mse]\n"}


class ThirdPartyModel:
    """A plugin author's model: constraints declared in the signature, nothing else to write."""

    def __init__(
        self,
        *,
        width: Annotated[int, Gt(0)] = 8,
        dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.1,
        layers: Annotated[tuple[Annotated[int, Gt(0)], ...], MinLen(1), MaxLen(3)] = (16,),
        groups: Annotated[int, Ge(1), MultipleOf(2)] = 2,
        limit: Annotated[float | None, Gt(0), AllowInf] = None,
        temperature: float = math.inf,
        weights: dict[str, Annotated[float, Ge(0)]] | None = None,
        tag: Annotated[str, Len(1, 8)] = "x",
        mode: Literal["a", "b"] = "a",
    ) -> None:
        self.width = width


class ThirdPartyMetric:
    def __init__(self, *, n_samples: Annotated[int, Ge(2)] = 10,
                 quantile: Annotated[float, Le(1), Ge(0)] = 0.5) -> None:
        self.n_samples = n_samples


class ThirdPartyPlugin:
    @hookimpl
    def benchbed_register_models(self, register) -> None:
        register(ModelSpec(name="third", factory=ThirdPartyModel, description="declared ranges"))

    @hookimpl
    def benchbed_register_metrics(self, register) -> None:
        register(MetricSpec(name="third_metric", factory=ThirdPartyMetric, description="declared ranges",
                            higher_is_better=True))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_plugins(strict=False, extra=[("third_party", ThirdPartyPlugin())]).registry


def _load(registry: Registry, body: str) -> Suite:
    text = HEADER + body + "".join(table for axis, table in AXES.items() if f"[{axis}" not in body)
    return parse_suite(text, registry, path=PATH)


def _error(registry: Registry, body: str) -> str:
    with pytest.raises(SuiteError) as exc:
        _load(registry, body)
    return str(exc.value)


# ------------------------------------------------------------------------------------------------
# the built-in plugins, through the suite loader


@pytest.mark.parametrize(("body", "expected"), [
    ("[models.vae]\nlatent_dim = -3\n", "model 'vae': parameter 'latent_dim' (suite.toml, line 8) must be > 0, got -3"),
    ("[models.vae]\nlatent_dim = 0\n", "model 'vae': parameter 'latent_dim' (suite.toml, line 8) must be > 0, got 0"),
    ("[models.lebm]\nlatent_dim = -3\n",
     "model 'lebm': parameter 'latent_dim' (suite.toml, line 8) must be > 0, got -3"),
    ("[models.lebm]\nlatent_dim = 0\n", "model 'lebm': parameter 'latent_dim' (suite.toml, line 8) must be > 0, got 0"),
    ("[models.vae]\nhidden = [0]\n", "model 'vae': parameter 'hidden'[0] (suite.toml, line 8) must be > 0, got 0"),
    ("[models.vae]\nhidden = [64, 0]\n", "model 'vae': parameter 'hidden'[1] (suite.toml, line 8) must be > 0, got 0"),
    ("[models.lebm]\nenergy_hidden = [200, -1]\n",
     "model 'lebm': parameter 'energy_hidden'[1] (suite.toml, line 8) must be > 0, got -1"),
    ("[models.vae]\nobs_std = inf\n", "model 'vae': parameter 'obs_std' (suite.toml, line 8) must be finite, got inf"),
    ("[models.vae]\nobs_std = nan\n", "model 'vae': parameter 'obs_std' (suite.toml, line 8) must be finite, got nan"),
    ("[models.vae]\nobs_std = 0\n", "model 'vae': parameter 'obs_std' (suite.toml, line 8) must be > 0, got 0"),
    ("[models.vae]\nlr = -1e-3\n", "model 'vae': parameter 'lr' (suite.toml, line 8) must be > 0, got -0.001"),
    ("[models.hlebm]\nlatent_dims = [8]\n",
     "model 'hlebm': parameter 'latent_dims' (suite.toml, line 8) must have at least 2 elements, got [8]"),
    ("[models.sri]\nlatent_dims = []\n",
     "model 'sri': parameter 'latent_dims' (suite.toml, line 8) must not be empty, got []"),
    ("[models.lebm]\nbeta1 = 1.0\n", "model 'lebm': parameter 'beta1' (suite.toml, line 8) must be in [0, 1), got 1.0"),
    ("[models.gmmn_ae]\nae_dropout = [0.2, 1.0]\n",
     "model 'gmmn_ae': parameter 'ae_dropout'[1] (suite.toml, line 8) must be in [0, 1), got 1.0"),
    ("[models.jgmmn]\ncode_bound = -inf\n",
     "model 'jgmmn': parameter 'code_bound' (suite.toml, line 8) must be > 0, got -inf"),
    ("[models.mine]\ncomponent = 'vae'\nlatent_dim = 0\n",
     "model 'mine' (component 'vae'): parameter 'latent_dim' (suite.toml, line 9) must be > 0, got 0"),
    ("[models]\nvae = { hidden = [8, 0] }\n",
     "model 'vae': parameter 'hidden'[1] (suite.toml, line 8) must be > 0, got 0"),
])
def test_model_ranges(registry: Registry, body: str, expected: str) -> None:
    assert _error(registry, body) == f"suite.toml: {expected}"


@pytest.mark.parametrize(("body", "expected"), [
    ("[metrics.mmd]\nn_samples = 0\n", "metric 'mmd': parameter 'n_samples' (suite.toml, line 8) must be >= 2, got 0"),
    ("[metrics.fd_raw]\nn_samples = 0\n",
     "metric 'fd_raw': parameter 'n_samples' (suite.toml, line 8) must be >= 2, got 0"),
    ("[metrics.loglik]\nn_examples = 0\n",
     "metric 'loglik': parameter 'n_examples' (suite.toml, line 8) must be > 0, got 0"),
    ("[metrics.loglik]\nk = -1\n", "metric 'loglik': parameter 'k' (suite.toml, line 8) must be > 0, got -1"),
    ("[metrics.loglik]\ntarget_accept = 1.5\n",
     "metric 'loglik': parameter 'target_accept' (suite.toml, line 8) must be in (0, 1), got 1.5"),
    ("[metrics.loglik]\nparzen_bandwidths = [0.1, 0.0]\n",
     "metric 'loglik': parameter 'parzen_bandwidths'[1] (suite.toml, line 8) must be > 0, got 0.0"),
    ("[metrics.recon_mse]\nbatch_size = 0\n",
     "metric 'recon_mse': parameter 'batch_size' (suite.toml, line 8) must be > 0, got 0"),
    ("[metrics.mmd]\nbatch_size = 0\n", "metric 'mmd': parameter 'batch_size' (suite.toml, line 8) must be > 0, got 0"),
    ("[metrics.mmd]\nvariances = []\n",
     "metric 'mmd': parameter 'variances' (suite.toml, line 8) must not be empty, got []"),
    ("[metrics.mmd]\nvariances = [1.0, -2.0]\n",
     "metric 'mmd': parameter 'variances'[1] (suite.toml, line 8) must be > 0, got -2.0"),
    ("[metrics.mmd]\nmultipliers = []\n",
     "metric 'mmd': parameter 'multipliers' (suite.toml, line 8) must not be empty, got []"),
    ("[metrics.mmd]\nn_reference = 1\n",
     "metric 'mmd': parameter 'n_reference' (suite.toml, line 8) must be >= 2, got 1"),
    ("[metrics.outlier_auroc]\nclasses = [0, -1]\n",
     "metric 'outlier_auroc': parameter 'classes'[1] (suite.toml, line 8) must be >= 0, got -1"),
])
def test_metric_ranges(registry: Registry, body: str, expected: str) -> None:
    assert _error(registry, body) == f"suite.toml: {expected}"


@pytest.mark.parametrize(("body", "expected"), [
    ("[samplers.langevin]\nn_steps = -1\n",
     "sampler 'langevin': parameter 'n_steps' (suite.toml, line 8) must be >= 0, got -1"),
    ("[samplers.langevin]\nprior = { n_steps = -1 }\n",
     "sampler 'langevin' role 'prior': parameter 'n_steps' (suite.toml, line 8) must be >= 0, got -1"),
    ("[samplers.langevin.posterior]\nn_steps = -1\n",
     "sampler 'langevin' role 'posterior': parameter 'n_steps' (suite.toml, line 8) must be >= 0, got -1"),
    ("[samplers.langevin]\nstep_size = 0.0\n",
     "sampler 'langevin': parameter 'step_size' (suite.toml, line 8) must be > 0, got 0.0"),
    ("[samplers.hmc]\ntarget_accept = 1.5\n",
     "sampler 'hmc': parameter 'target_accept' (suite.toml, line 8) must be in (0, 1), got 1.5"),
    ("[samplers.hmc]\ntarget_accept = 1\n",
     "sampler 'hmc': parameter 'target_accept' (suite.toml, line 8) must be in (0, 1), got 1"),
    ("[samplers.hmc]\nn_leapfrog = 0\n",
     "sampler 'hmc': parameter 'n_leapfrog' (suite.toml, line 8) must be > 0, got 0"),
    ("[samplers.short_run]\nn_steps = 0\n",
     "sampler 'short_run': parameter 'n_steps' (suite.toml, line 8) must be > 0, got 0"),
])
def test_sampler_ranges(registry: Registry, body: str, expected: str) -> None:
    assert _error(registry, "[models.lebm]\n" + body) == f"suite.toml: {expected}".replace("line 8", "line 9")


def test_dataset_ranges(registry: Registry) -> None:
    text = HEADER.replace("[datasets.gmm8]\n", "[datasets.gmm8]\nstd = 0\n") + "".join(AXES.values())
    with pytest.raises(SuiteError) as exc:
        parse_suite(text, registry, path=PATH)
    assert str(exc.value) == "suite.toml: dataset 'gmm8': parameter 'std' (suite.toml, line 7) must be > 0, got 0"


def test_wrong_element_type_names_the_element(registry: Registry) -> None:
    assert _error(registry, "[models.vae]\nhidden = [64, 'x']\n") == (
        "suite.toml: model 'vae': parameter 'hidden' (suite.toml, line 8) must be tuple[int, ...] "
        "('hidden'[1] is str 'x', not int), got list [64, 'x']")


def test_boundary_values_pass(registry: Registry) -> None:
    suite = _load(registry, """
[models.vae]
latent_dim = 1
hidden = []
obs_std = 1e-9
[models.hlebm]
latent_dims = [1, 1]
ebm_layers = [0]
[models.jgmmn]
code_bound = inf
n_modes = 0
[models.triangle]
max_grad_norm = inf
beta1 = 0
[samplers.langevin]
n_steps = 0
prior = { n_steps = 0 }
[samplers.hmc]
target_accept = 0.999
jitter = 0.0
n_leapfrog = 1
[metrics.loglik]
n_examples = 1
k = 1
parzen_bandwidths = []
target_accept = 0.001
[metrics.mmd]
n_samples = 2
n_reference = 2
multipliers = [1]
[metrics.recon_mse]
batch_size = 1
n_examples = 1
[metrics.outlier_auroc]
classes = [0]
""")
    vae, hlebm, jgmmn, triangle = suite.models
    assert vae.params["hidden"] == () and vae.params["latent_dim"] == 1
    assert hlebm.params["latent_dims"] == (1, 1) and hlebm.params["ebm_layers"] == (0,)
    assert jgmmn.params["code_bound"] == math.inf and triangle.params["max_grad_norm"] == math.inf
    assert triangle.params["beta1"] == 0.0 and isinstance(triangle.params["beta1"], float)
    langevin, hmc = suite.samplers
    assert langevin.params["n_steps"] == 0 and dict(langevin.roles["prior"]) == {"n_steps": 0}
    loglik, mmd, recon, outlier = suite.metrics
    assert loglik.params["parzen_bandwidths"] == () and mmd.params["multipliers"] == (1.0,)
    assert outlier.params["classes"] == (0,)


def test_builtin_defaults_satisfy_their_declared_ranges(registry: Registry) -> None:
    """A default outside its own range would make the constraint or the default wrong."""
    checked = 0
    for kind, entries in registry.entries.items():
        for name, entry in entries.items():
            for p in schema(entry.spec.factory).values():
                assert not isinstance(p.declared, str), f"{kind} {name!r}: annotation of {p.name!r} did not resolve"
                bad = p.check(p.default)
                assert bad is None, f"{kind} {name!r}: default of {p.name!r}: {bad.message(p.name)}"
                checked += bool(p.constraints)
    assert checked > 150  # the built-ins declare ranges on most of their parameters


def test_sampler_role_defaults_from_a_model_are_checked_too(registry: Registry) -> None:
    """A model's role defaults go through the same resolve, so a bad one is a SuiteError naming the role."""
    from benchbed.sampling import BoundSampler

    bound = BoundSampler(registry.sampler("short_run"))
    with pytest.raises(SuiteError, match=r"^sampler 'short_run' \(role 'posterior'\): parameter 'n_steps' "
                                         r"must be > 0, got 0$"):
        bound("posterior", n_steps=0, step_size=0.1)


# ------------------------------------------------------------------------------------------------
# a third-party plugin gets the same checks for free


@pytest.mark.parametrize(("body", "expected"), [
    ("width = 0", "parameter 'width' (suite.toml, line 8) must be > 0, got 0"),
    ("dropout = 1", "parameter 'dropout' (suite.toml, line 8) must be in [0, 1), got 1"),
    ("layers = []", "parameter 'layers' (suite.toml, line 8) must not be empty, got []"),
    ("layers = [1, 2, 3, 4]", "parameter 'layers' (suite.toml, line 8) must have at most 3 elements, got [1, 2, 3, 4]"),
    ("layers = [4, 0]", "parameter 'layers'[1] (suite.toml, line 8) must be > 0, got 0"),
    ("groups = 3", "parameter 'groups' (suite.toml, line 8) must be a multiple of 2, got 3"),
    ("groups = 0", "parameter 'groups' (suite.toml, line 8) must be >= 1, got 0"),
    ("limit = -inf", "parameter 'limit' (suite.toml, line 8) must be > 0, got -inf"),
    ("limit = nan", "parameter 'limit' (suite.toml, line 8) must be finite, got nan"),
    ("temperature = nan", "parameter 'temperature' (suite.toml, line 8) must be finite, got nan"),
    ("weights = { a = 1.0, b = -0.5 }", "parameter 'weights'['b'] (suite.toml, line 8) must be >= 0, got -0.5"),
    ("weights = { a = inf }", "parameter 'weights'['a'] (suite.toml, line 8) must be finite, got inf"),
    ("weights = { a = 'x' }", "parameter 'weights' (suite.toml, line 8) must be dict[str, float] | None "
                              "('weights'['a'] is str 'x', not float), got dict {'a': 'x'}"),
    ("tag = ''", "parameter 'tag' (suite.toml, line 8) must not be empty, got ''"),
    ("tag = 'far too long'", "parameter 'tag' (suite.toml, line 8) must have at most 8 characters, got 'far too long'"),
])
def test_third_party_model(registry: Registry, body: str, expected: str) -> None:
    assert _error(registry, f"[models.third]\n{body}\n") == f"suite.toml: model 'third': {expected}"


def test_third_party_valid_values_and_metric(registry: Registry) -> None:
    suite = _load(registry, "[models.third]\nwidth = 1\ndropout = 0\nlayers = [1, 2, 3]\ngroups = 4\nlimit = inf\n"
                            "temperature = -inf\nweights = { a = 0 }\ntag = '12345678'\n"
                            "[metrics.third_metric]\nn_samples = 2\nquantile = 1\n")
    (third,) = suite.models
    assert third.params["limit"] == math.inf and third.params["temperature"] == -math.inf
    assert third.params["weights"] == {"a": 0} and third.params["layers"] == (1, 2, 3)
    assert _error(registry, "[metrics.third_metric]\nquantile = 1.5\n") == (
        "suite.toml: metric 'third_metric': parameter 'quantile' (suite.toml, line 8) must be in [0, 1], got 1.5")


def test_schema_exposes_constraints() -> None:
    params = schema(ThirdPartyModel)
    assert {name: p.constraints for name, p in params.items()} == {
        "width": "> 0", "dropout": "in [0, 1)", "layers": "non-empty; len <= 3; each > 0",
        "groups": ">= 1; multiple of 2", "limit": "> 0; inf allowed", "temperature": "inf allowed",
        "weights": "each value >= 0", "tag": "non-empty; len <= 8", "mode": "",
    }
    width = params["width"]
    assert (width.name, width.default, width.annotation, width.required) == ("width", 8, int, False)
    assert width.declared == Annotated[int, Gt(0)]
    assert params["layers"].annotation == tuple[int, ...]  # the plain type, as before


# ------------------------------------------------------------------------------------------------
# the checker itself, on nested types


def test_check_value_nested() -> None:
    positive = Annotated[int, Gt(0)]
    nested = tuple[Annotated[tuple[positive, ...], MinLen(1)], ...]
    assert check_value(((1, 2), (3,)), nested) is None
    bad = check_value(((1, 2), (3, 0)), nested)
    assert (bad.path, bad.must, bad.value) == ("[1][1]", "be > 0", 0)
    assert check_value(((1,), ()), nested).message("x") == "'x'[1] must not be empty, got ()"
    assert check_value([[1], [-1]], list[list[positive]]).message("x") == "'x'[1][0] must be > 0, got -1"
    assert check_value({"a": (1, 0)}, dict[str, tuple[positive, ...]]).message("d") == "'d'['a'][1] must be > 0, got 0"
    fixed = tuple[positive, Annotated[float, Interval(gt=0, lt=1)]]
    assert check_value((1, 0.5), fixed) is None
    assert check_value((1, 1.5), fixed).message("p") == "'p'[1] must be in (0, 1), got 1.5"


def test_check_value_unions_and_none() -> None:
    optional = Annotated[int | None, Gt(0)]
    assert check_value(None, optional) is None and check_value(3, optional) is None
    assert check_value(0, optional).message("n") == "'n' must be > 0, got 0"
    arms = Annotated[int, Gt(0)] | Annotated[str, MinLen(2)] | None
    assert check_value(2, arms) is None and check_value("ab", arms) is None and check_value(None, arms) is None
    assert check_value(-1, arms).message("u") == "'u' must be > 0, got -1"
    assert check_value("a", arms).message("u") == "'u' must have at least 2 characters, got 'a'"


def test_check_value_non_finite_rule() -> None:
    assert check_value(math.inf, float).must == "be finite"
    assert check_value(math.nan, float).must == "be finite"
    assert check_value((1.0, -math.inf), tuple[float, ...]).message("t") == "'t'[1] must be finite, got -inf"
    assert check_value(math.inf, float, allow_inf=True) is None
    assert check_value(math.nan, float, allow_inf=True) is not None  # NaN needs a NaN default
    assert check_value(math.nan, float, allow_nan=True) is None
    assert check_value(math.inf, Annotated[float, AllowInf()]) is None  # the class or an instance
    assert check_value((math.inf,), Annotated[tuple[float, ...], AllowInf]) is None  # applies inside
    assert check_value(math.inf, Annotated[float, Le(10), AllowInf]).message("x") == "'x' must be <= 10, got inf"
    assert check_value(math.inf, int) is None and check_value(10**400, float) is None  # ints are always finite
    assert Param("t", math.inf, float).check(math.inf) is None  # an infinite default allows inf...
    assert Param("t", math.inf, float).check(math.nan) is not None  # ...but not NaN
    assert Param("t", (1.0, math.nan), tuple[float, ...]).check((math.nan,)) is None


def test_check_value_other_metadata() -> None:
    assert check_value(4, Annotated[int, MultipleOf(2)]) is None
    assert check_value(5, Annotated[int, MultipleOf(2)]).must == "be a multiple of 2"
    assert check_value(3, Annotated[int, Ge(0), Le(2)]).must == "be in [0, 2]"
    assert check_value(3, Annotated[int, Gt(0), Ge(1), Lt(3)]).must == "be > 0 and >= 1 and < 3"
    is_even = Predicate(lambda v: v % 2 == 0)
    assert check_value(3, Annotated[int, is_even]).must == "satisfy <lambda>"
    assert check_value(-1.0, Annotated[float, Predicate(math.isfinite), Ge(0)]).must == "be >= 0"
    assert check_value("abc", Annotated[str, Len(1, 2)]).must == "have at most 2 characters"
    assert check_value((1, 2), Annotated[tuple[int, ...], Len(3)]).must == "have at least 3 elements"
    assert check_value(1, Annotated[int, "a doc string", object()]) is None  # foreign metadata is ignored
    assert check_value("x", Annotated[str, Gt(0)]).must == "be > 0"  # a bound that cannot apply is not met


def test_resolve_checks_ranges_directly() -> None:
    def factory(*, n: Annotated[int, Gt(0)] = 1, xs: tuple[Annotated[float, Ge(0)], ...] = ()) -> Any: ...

    assert resolve(factory, {"n": 2, "xs": [0, 1]}, what="f") == {"n": 2, "xs": (0.0, 1.0)}
    with pytest.raises(SuiteError, match=r"^f: parameter 'xs'\[1\] @here must be >= 0, got -1$"):
        resolve(factory, {"xs": [0, -1]}, what="f", where=lambda key: " @here")
    with pytest.raises(SuiteError, match=r"^f: parameter 'n' must be int, got bool True$"):
        resolve(factory, {"n": True}, what="f")  # the type check comes first
