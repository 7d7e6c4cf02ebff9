"""benchbed.testing: the conformance checks pass on the built-ins and on a correct fake, and fail with a
helpful AssertionError on deliberately broken components."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchbed import DatasetSpec, MetricSpec, ModelSpec, SamplerSpec, hookimpl
from benchbed.contracts import DataBundle, DatasetInfo, SampleResult, Split
from benchbed.errors import NotApplicable
from benchbed.plugins import load_plugins
from benchbed.registry import Registry
from benchbed.testing import (
    check_dataset,
    check_metric,
    check_model,
    check_sampler,
    evaluate_metric,
    fit,
    load_dataset,
    make_eval_context,
)

SMALL_GMM = {"n_train": 256, "n_val": 64, "n_test": 64}
SMALL_VAE = {"latent_dim": 2, "hidden": (16,)}


@pytest.fixture(scope="module")
def builtins() -> Registry:
    loaded = load_plugins(strict=False)
    broken = {"datasets", "generators", "metrics", "samplers"} & set(loaded.failures)
    assert not broken, {k: loaded.failures[k] for k in broken}
    return loaded.registry


# -- the built-ins pass ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), [("gmm8", SMALL_GMM), ("digits", {})])
def test_builtin_datasets_pass(builtins: Registry, name: str, params: dict) -> None:
    bundle = check_dataset(name, registry=builtins, **params)
    assert bundle.info.name == name


@pytest.mark.parametrize(("dataset", "dataset_params"), [("gmm8", SMALL_GMM), ("digits", {})])
def test_builtin_vae_passes(builtins: Registry, dataset: str, dataset_params: dict) -> None:
    model = check_model("vae", dataset=dataset, params=SMALL_VAE, dataset_params=dataset_params, registry=builtins)
    assert {"sample", "reconstruct", "infer"} <= set(model.capabilities)


def test_builtin_sampler_and_metric_pass(builtins: Registry) -> None:
    assert "langevin" in builtins.names("sampler")
    result = check_sampler("langevin", registry=builtins, n_steps=5)
    assert result.diagnostics["steps"] == 5
    check_metric("recon_mse", registry=builtins)


def test_builtin_metric_through_fit_and_eval_context(builtins: Registry) -> None:
    """evaluate_metric('recon_mse') on a fitted VAE beats the same VAE after a single step."""
    bundle = load_dataset("gmm8", registry=builtins, **SMALL_GMM)
    values = []
    for steps in (1, 150):
        model, history = fit("vae", bundle, steps=steps, batch_size=64, params=SMALL_VAE, registry=builtins)
        assert len(history) == steps
        assert all("loss" in h and math.isfinite(h["loss"]) for h in history), history
        values.append(evaluate_metric("recon_mse", make_eval_context(model, bundle), registry=builtins).value)
    assert values[1] < 0.7 * values[0], values


# -- a correct fake passes ------------------------------------------------------------------------------


class _RandomWalkMetropolis:
    """A correct (if slow) sampler: Gaussian random-walk proposals, Metropolis accept/reject per chain."""

    def __init__(self, *, n_steps: int = 20, step_size: float = 0.5) -> None:
        self.n_steps = n_steps
        self.step_size = step_size

    def sample(self, log_density, z0: torch.Tensor) -> SampleResult:  # noqa: ANN001
        z, lp, accepted = z0.detach().clone(), log_density(z0), 0.0
        for _ in range(self.n_steps):
            proposal = z + self.step_size * torch.randn_like(z)
            lp_new = log_density(proposal)
            accept = torch.rand_like(lp).log() < lp_new - lp
            z = torch.where(accept[:, None], proposal, z)
            lp = torch.where(accept, lp_new, lp)
            accepted += float(accept.float().mean())
        return SampleResult(z, {"steps": float(self.n_steps), "step_size": self.step_size,
                                "final_log_density": float(lp.mean()), "acceptance_rate": accepted / self.n_steps})


def test_fake_components_pass(helpers, fake_registry: Registry) -> None:
    check_dataset("toy", registry=fake_registry)
    check_dataset("toy", registry=fake_registry, labels=True, kind="image")
    check_model("linear", dataset="toy", registry=fake_registry)
    check_model("dyn", dataset="toy", registry=fake_registry, sampler="walk")
    assert check_metric("fake_mse", registry=fake_registry, model=None) is None  # the spec only
    assert math.isfinite(check_metric("fake_mse", registry=fake_registry, dataset="toy").value)  # a model picked
    check_metric("fake_ref", registry=fake_registry, dataset="toy")
    reg = _broken_registry(helpers, s=SamplerSpec(name="rwm", factory=_RandomWalkMetropolis))
    result = check_sampler("rwm", registry=reg)
    assert 0 < result.diagnostics["acceptance_rate"] < 1


def test_fake_metric_evaluated_on_a_fitted_model(fake_registry: Registry) -> None:
    """check_metric with a model evaluates it on that model and checks the result and reference rows."""
    result = check_metric("fake_ref", registry=fake_registry, model="linear", dataset="toy", steps=5)
    assert result is not None and math.isfinite(result.value)
    with pytest.raises(NotApplicable, match="fake weights not found"):
        check_metric("fake_na", registry=fake_registry, model="linear", dataset="toy")


def test_gradient_walk_is_not_a_sampler(fake_registry: Registry) -> None:
    """The fake 'walk' (gradient ascent, no noise) drives models fine but does not sample: chains started
    from a Gaussian collapse towards its mode, which the invariance check reports."""
    with pytest.raises(AssertionError, match=r"sampler 'walk' does not leave N\(mu, Sigma\) invariant: variance"):
        check_sampler("walk", registry=fake_registry)


def test_train_variant_through_testing_helpers(fake_registry: Registry) -> None:
    """``make_eval_context(...).train_variant`` re-fits the model; metrics run it under no_grad."""
    bundle = load_dataset("toy", registry=fake_registry, labels=True)
    model, _ = fit("linear", bundle, steps=20, batch_size=16, registry=fake_registry)
    ctx = make_eval_context(model, bundle, registry=fake_registry)
    result = evaluate_metric("fake_outlier", ctx, registry=fake_registry)
    assert 0 < result.value < 1


# -- broken fakes fail with a helpful message --------------------------------------------------------------


def _broken_registry(helpers, **components) -> Registry:
    """The fake plugin plus one more plugin registering ``components`` (name -> spec)."""

    class Broken:
        @hookimpl
        def benchbed_register_models(self, register):  # noqa: ANN001, ANN201
            for spec in components.values():
                if isinstance(spec, ModelSpec):
                    register(spec)

        @hookimpl
        def benchbed_register_datasets(self, register):  # noqa: ANN001, ANN201
            for spec in components.values():
                if isinstance(spec, DatasetSpec):
                    register(spec)

        @hookimpl
        def benchbed_register_samplers(self, register):  # noqa: ANN001, ANN201
            for spec in components.values():
                if isinstance(spec, SamplerSpec):
                    register(spec)

        @hookimpl
        def benchbed_register_metrics(self, register):  # noqa: ANN001, ANN201
            for spec in components.values():
                if isinstance(spec, MetricSpec):
                    register(spec)

    return load_plugins(extra=[("fake", helpers.FakePlugin()), ("broken", Broken())], entry_points_enabled=False,
                        strict=True).registry


def _model(helpers, name: str, **overrides) -> type:
    """A subclass of the fake linear AE with some methods replaced."""
    return type(name, (helpers.LinearAE,), overrides)


def test_model_whose_sample_has_the_wrong_shape(helpers) -> None:
    cls = _model(helpers, "WrongSample", sample=lambda self, n: torch.zeros(n, 3))
    reg = _broken_registry(helpers, m=ModelSpec(name="wrong_sample", factory=cls))
    with pytest.raises(AssertionError, match=r"model 'wrong_sample': sample\(\) shape"):
        check_model("wrong_sample", dataset="toy", registry=reg)


def test_model_that_builds_networks_in_init(helpers) -> None:
    def __init__(self, *, latent_dim: int = 1) -> None:  # noqa: N807
        helpers.LinearAE.__init__(self, latent_dim=latent_dim)
        self.enc = nn.Linear(2, latent_dim)

    cls = _model(helpers, "Eager", __init__=__init__)
    reg = _broken_registry(helpers, m=ModelSpec(name="eager", factory=cls))
    with pytest.raises(AssertionError, match=r"model 'eager': the constructor built networks; build them in setup\(\)"):
        check_model("eager", dataset="toy", registry=reg)


def test_model_declaring_a_capability_it_lacks(helpers) -> None:
    cls = _model(helpers, "Boastful", capabilities=frozenset({"reconstruct", "log_likelihood"}))
    reg = _broken_registry(helpers, m=ModelSpec(name="boastful", factory=cls))
    with pytest.raises(AssertionError, match=r"model 'boastful' declares 'log_likelihood' but has no method "
                                             r"log_likelihood\(\)"):
        check_model("boastful", dataset="toy", registry=reg)


def test_model_with_non_finite_inference(helpers) -> None:
    cls = _model(helpers, "NaNInfer", infer=lambda self, x: torch.full((x.shape[0], 1), float("nan")),
                 reconstruct=lambda self, x: self.dec(self.enc(x)))
    reg = _broken_registry(helpers, m=ModelSpec(name="nan_infer", factory=cls))
    with pytest.raises(AssertionError, match=r"model 'nan_infer': infer\(\)"):
        check_model("nan_infer", dataset="toy", registry=reg)


def test_model_without_a_parameter_count(helpers) -> None:
    cls = _model(helpers, "Uncounted", n_parameters=None)
    reg = _broken_registry(helpers, m=ModelSpec(name="uncounted", factory=cls))
    with pytest.raises(AssertionError, match=r"model 'uncounted' has no n_parameters\(\)"):
        check_model("uncounted", dataset="toy", registry=reg)


def test_model_whose_checkpoint_does_not_restore(helpers) -> None:
    cls = _model(helpers, "Forgetful", restore=lambda self, state: None)
    reg = _broken_registry(helpers, m=ModelSpec(name="forgetful", factory=cls))
    with pytest.raises(AssertionError, match=r"model 'forgetful': checkpoint does not restore 'enc.weight'"):
        check_model("forgetful", dataset="toy", registry=reg)


def test_model_with_positional_hyperparameter(helpers) -> None:
    def __init__(self, latent_dim: int = 1) -> None:  # noqa: N807
        helpers.LinearAE.__init__(self, latent_dim=latent_dim)

    cls = _model(helpers, "Positional", __init__=__init__)
    reg = _broken_registry(helpers, m=ModelSpec(name="positional", factory=cls))
    with pytest.raises(AssertionError, match="model 'positional': parameter 'latent_dim' must be keyword-only"):
        check_model("positional", dataset="toy", registry=reg)


class _NonDeterministic:
    def load(self, *, seed: int) -> DataBundle:
        def split() -> Split:
            return Split(torch.randn(8, 2))  # ignores the seed

        return DataBundle(DatasetInfo("nd", (2,), "vector"), split(), split(), split())


class _OutOfRange:
    def load(self, *, seed: int) -> DataBundle:
        g = torch.Generator().manual_seed(seed)

        def split() -> Split:
            return Split(2 * torch.rand(8, 1, 2, 2, generator=g))  # "images" up to 2

        return DataBundle(DatasetInfo("oor", (1, 2, 2), "image"), split(), split(), split())


@pytest.mark.parametrize(("factory", "message"), [
    (_NonDeterministic, "dataset 'broken_data': splits differ for the same seed"),
    (_OutOfRange, r"dataset 'broken_data': .*breaks the data-set contract: train.x: image values in \[0.*, 1.*\], "
                  r"not in \[0, 1\]"),
])
def test_broken_datasets(helpers, factory: type, message: str) -> None:
    reg = _broken_registry(helpers, d=DatasetSpec(name="broken_data", factory=factory))
    with pytest.raises(AssertionError, match=message):
        check_dataset("broken_data", registry=reg)


class _NoDiagnostics:
    def sample(self, log_density, z0):  # noqa: ANN001, ANN201
        return SampleResult(z0.clone(), {"steps": 0.0, "step_size": 0.0})


class _GradOnly:
    """Enables grad but not inference mode off: breaks when a metric runs under torch.inference_mode()."""

    def sample(self, log_density, z0):  # noqa: ANN001, ANN201
        with torch.enable_grad():
            z = z0.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(log_density(z).sum(), z)
        z = (z + 0.1 * g).detach()
        return SampleResult(z, {"steps": 1.0, "step_size": 0.1, "final_log_density": float(log_density(z).mean())})


def test_broken_sampler(helpers) -> None:
    reg = _broken_registry(helpers, s=SamplerSpec(name="lazy", factory=_NoDiagnostics))
    with pytest.raises(AssertionError, match="sampler 'lazy': diagnostics lack 'final_log_density'"):
        check_sampler("lazy", registry=reg)


def test_sampler_failing_under_inference_mode_gets_an_assertion_naming_the_mode(helpers) -> None:
    reg = _broken_registry(helpers, s=SamplerSpec(name="grad_only", factory=_GradOnly))
    with pytest.raises(AssertionError, match=r"sampler 'grad_only'.*inference_mode"):
        check_sampler("grad_only", registry=reg)


class _NoEvaluate:
    pass


class _BareFloat:
    def evaluate(self, ctx):  # noqa: ANN001, ANN201
        return 0.5


def test_check_metric_evaluates_even_without_a_model(helpers) -> None:
    """Without ``model=`` a compatible registered model is picked, so a wrong return type is caught."""
    reg = _broken_registry(helpers, a=MetricSpec(name="bare", factory=_BareFloat, higher_is_better=True))
    with pytest.raises(AssertionError, match="evaluate\\(\\) returned float, not MetricResult"):
        check_metric("bare", registry=reg, dataset="toy")
    image_only = MetricSpec(name="img", factory=_BareFloat, higher_is_better=True, data_kinds=frozenset({"image"}))
    with pytest.raises(AssertionError, match="metric 'img': no registered model applies to it on data set 'toy'"):
        check_metric("img", registry=_broken_registry(helpers, a=image_only), dataset="toy")


def test_broken_metrics(helpers) -> None:
    reg = _broken_registry(helpers, a=MetricSpec(name="no_eval", factory=_NoEvaluate, higher_is_better=True),
                           b=MetricSpec(name="no_direction", factory=_NoEvaluate, higher_is_better="yes"))
    with pytest.raises(AssertionError, match=r"metric 'no_eval': no evaluate\(\)"):
        check_metric("no_eval", registry=reg)
    with pytest.raises(AssertionError, match="metric 'no_direction': higher_is_better must be a bool"):
        check_metric("no_direction", registry=reg)


# -- a one-shot model (fitted by one call, no step loop) ------------------------------------------------

FACTOR_ANALYSIS_PLUGIN = '''
"""A third-party plugin wrapping scikit-learn's FactorAnalysis as a one-shot benchbed model."""

import torch
from sklearn.decomposition import FactorAnalysis

from benchbed import ModelSpec, hookimpl


class FactorAnalysisModel:
    """x = W z + mu + noise, z ~ N(0, I), diagonal noise; fitted by FA's EM in one fit(train) call.

    Capabilities: exact log_likelihood (FactorAnalysis.score_samples), infer (posterior mean of z),
    sample (W z + mu at prior draws of z: the decoder mean, like the built-in generators).
    """

    capabilities = frozenset({"sample", "infer", "log_likelihood"})

    def __init__(self, *, n_components: int = 1) -> None:
        self.n_components = n_components

    def setup(self, ctx) -> None:
        self.shape = ctx.info.shape
        self.fa = FactorAnalysis(n_components=self.n_components, random_state=0)

    def fit(self, train) -> dict:
        self.fa.fit(train.x.flatten(1).double().numpy())
        return {"train_loglik": float(self.fa.score(train.x.flatten(1).double().numpy()))}

    def _np(self, x):
        return x.flatten(1).double().numpy()

    def log_likelihood(self, x):
        return torch.from_numpy(self.fa.score_samples(self._np(x))).float()

    def infer(self, x):
        return torch.from_numpy(self.fa.transform(self._np(x))).float()

    def sample(self, n):
        z = torch.randn(n, self.n_components, dtype=torch.float64)
        x = z @ torch.from_numpy(self.fa.components_) + torch.from_numpy(self.fa.mean_)
        return x.float().view(n, *self.shape)

    def n_parameters(self) -> int:
        return int(self.fa.components_.size + self.fa.mean_.size + self.fa.noise_variance_.size)

    def checkpoint(self) -> dict:
        return {k: torch.from_numpy(getattr(self.fa, k).copy())
                for k in ("components_", "mean_", "noise_variance_")}

    def restore(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self.fa, k, v.numpy().copy())
        self.fa.n_features_in_ = self.fa.mean_.size


@hookimpl
def benchbed_register_models(register) -> None:
    register(ModelSpec(name="factor_analysis", factory=FactorAnalysisModel, one_shot=True,
                       description="scikit-learn FactorAnalysis, fitted in one call"))
'''

FA_SUITE = """
name = "fa"
seeds = [0]

[budget]
steps = 5
batch_size = 50

[datasets.gmm8]
n_train = 200
n_val = 50
n_test = 100

[models.factor_analysis]
[models.factor_analysis2]
component = "factor_analysis"
n_components = 2

[metrics.loglik]
n_examples = 100
"""


def test_one_shot_model_passes_trains_and_runs_in_a_suite(third_party, tmp_path) -> None:  # noqa: ANN001
    """A FactorAnalysis wrapper declared one_shot passes check_model (exact log_likelihood integrates to
    1, restored clone gives the same outputs, a true parameter count), trains via benchbed.testing.fit
    without a steps budget, and runs through ``benchbed run``."""
    from benchbed.cli import main
    from benchbed.store import Store

    third_party({"bbfa": FACTOR_ANALYSIS_PLUGIN}, {"fa": "bbfa"}, dist="bbfa")
    registry = load_plugins(strict=True).registry
    assert registry.model("factor_analysis").one_shot
    model = check_model("factor_analysis", registry=registry)
    assert model.n_parameters() == 2 + 2 + 2  # W (2x1), mu, noise variances
    bundle = load_dataset("gmm8", registry=registry, n_train=200, n_val=50, n_test=100)
    fitted, history = fit("factor_analysis", bundle, registry=registry)
    assert [set(h) for h in history] == [{"step", "train_loglik"}]
    exact = bundle.log_prob(bundle.test.x).mean()
    assert fitted.log_likelihood(bundle.test.x).mean() < exact  # one Gaussian fits 8 modes worse than the truth

    suite = tmp_path / "fa.toml"
    suite.write_text(FA_SUITE)
    assert main(["run", str(suite), "--store", str(tmp_path / "fa.sqlite"), "--out", str(tmp_path / "out"),
                 "--strict"]) == 0
    store = Store(tmp_path / "fa.sqlite")
    try:
        rows = [r for r in store.frame() if r["metric"] == "loglik" and r["kind"] == "model"]
    finally:
        store.close()
    assert sorted(r["model"] for r in rows) == ["factor_analysis", "factor_analysis2"]
    assert all(r["run_status"] == "ok" and r["metric_status"] == "ok" and r["estimator"] == "exact"
               and r["train_steps"] == 0 for r in rows), rows
    assert sorted(r["n_params"] for r in rows) == [6, 8]  # true counts: W, mu and the noise variances
