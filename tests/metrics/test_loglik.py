"""Log-likelihood estimators against exact marginals: a linear-Gaussian model with the TRUE decoder
(from the linear_gaussian data set's extras), its exact posterior, an EBM-tilted prior, and Parzen windows."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from benchbed.blocks.partition import PartitionEstimate, log_partition_from_base
from benchbed.contracts import DataBundle, DatasetInfo, EvalContext, Split
from benchbed.errors import NotApplicable
from benchbed.testing import evaluate_metric, load_dataset
from benchbed_metrics.importance import iwae_log_marginal, prior_is_log_marginal
from benchbed_metrics.loglik import LogLikelihood


class TrueLinearGaussian:
    """x = W z + b + noise_std * eps with prior exp(-a|z|^2/2) N(z; 0, I) (a = 0: the plain Gaussian prior).

    With ``a > 0`` the prior is an "EBM prior" with tilt f(z) = -a|z|^2/2: still Gaussian, N(0, I/(1+a)),
    so everything has a closed form.  ``proposal`` is the exact posterior, optionally perturbed.
    """

    def __init__(self, w: torch.Tensor, b: torch.Tensor, noise_std: float, *, a: float = 0.0,
                 proposal_scale: float = 1.0, proposal_shift: float = 0.0, caps: set[str] | None = None) -> None:
        self.w, self.b, self.s, self.a = w.double(), b.double(), noise_std, a
        self.proposal_scale, self.proposal_shift = proposal_scale, proposal_shift
        base = {"log_joint", "log_prior", "proposal", "log_likelihood", "sample"}
        if a:
            base.add("log_partition")
        self.capabilities = frozenset(caps if caps is not None else base)
        self.L = w.shape[1]

    def tilt(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.a * z.double().pow(2).sum(1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:  # f(z) + log N(z; 0, I), unnormalised when a > 0
        return self.tilt(z) + Normal(0.0, 1.0).log_prob(z.double()).sum(1)

    def sample_prior_base(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.L, dtype=torch.float64)

    def log_partition(self, n: int) -> PartitionEstimate:
        return log_partition_from_base(self.tilt, self.sample_prior_base, n)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = z.double() @ self.w.T + self.b
        return Normal(mean, self.s).log_prob(x.double()).sum(1) + self.log_prior(z)

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        precision = (1 + self.a) * torch.eye(self.L, dtype=torch.float64) + self.w.T @ self.w / self.s**2
        cov = torch.linalg.inv(precision)
        mean = (x.double() - self.b) @ self.w @ cov / self.s**2  # cov is symmetric
        return mean, cov

    def proposal(self, x: torch.Tensor) -> MultivariateNormal:
        mean, cov = self._posterior(x)
        shift = self.proposal_shift * cov.diagonal().sqrt()
        return MultivariateNormal(mean + shift, covariance_matrix=cov * self.proposal_scale**2)

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.w @ self.w.T / (1 + self.a) + self.s**2 * torch.eye(self.w.shape[0], dtype=torch.float64)
        return MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x.double())

    def sample(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.L, dtype=torch.float64) / math.sqrt(1 + self.a)
        return (z @ self.w.T + self.b + self.s * torch.randn(n, self.w.shape[0], dtype=torch.float64)).float()


def _data(latent_dim: int = 2, n_test: int = 40) -> DataBundle:
    return load_dataset("linear_gaussian", seed=0, n_train=200, n_val=100, n_test=n_test, latent_dim=latent_dim)


def _true_model(bundle: DataBundle, **kw: object) -> TrueLinearGaussian:
    e = bundle.extras
    return TrueLinearGaussian(e["W"], e["b"], float(e["noise_std"]), **kw)  # type: ignore[arg-type]


def test_dataset_density_equals_the_true_model(make_ctx) -> None:
    """The reference row is the data set's true density, which our closed form reproduces independently."""
    bundle = _data()
    model = _true_model(bundle)
    rows = LogLikelihood(n_examples=None).references(bundle)
    assert [r.label for r in rows] == ["true density"]
    exact = model.log_likelihood(bundle.test.x).mean()
    assert rows[0].result.value == pytest.approx(float(exact), abs=1e-3)
    res = evaluate_metric("loglik", make_ctx(model, bundle), n_examples=None)
    assert res.settings["estimator"] == "exact" and res.value == pytest.approx(float(exact), abs=1e-6)


def test_iwae_with_exact_posterior_is_exact_and_perturbed_is_close() -> None:
    bundle = _data()
    x = bundle.test.x
    exact = _true_model(bundle).log_likelihood(x)
    m = _true_model(bundle)
    # With q = p(z|x), every weight equals p(x): the estimate is exact for any K.
    assert torch.allclose(iwae_log_marginal(x, m.log_joint, m.proposal(x), 3), exact, atol=1e-6)
    m = _true_model(bundle, proposal_scale=1.5, proposal_shift=0.5)
    est = iwae_log_marginal(x, m.log_joint, m.proposal(x), 500)
    assert (est - exact).abs().max() < 0.5
    assert float((est - exact).mean()) <= 0.05  # a lower bound in expectation
    one = iwae_log_marginal(x, m.log_joint, m.proposal(x), 1)
    assert float((exact - one).mean()) > float((exact - est).mean())  # the bound tightens with K


def _ais_metric(**kw: object) -> LogLikelihood:
    settings = {"n_examples": None, "ais_chains": 16, "ais_steps": 200, "leapfrog": 5, **kw}
    return LogLikelihood(estimator="ais", **settings)  # type: ignore[arg-type]


def test_ais_agrees_with_exact_marginal(make_ctx) -> None:
    bundle = _data(latent_dim=2, n_test=30)
    model = _true_model(bundle, caps={"log_joint", "log_prior"})  # a decoder without an encoder
    exact = _true_model(bundle).log_likelihood(bundle.test.x)
    est, settings = _ais_metric().log_p(model, bundle, bundle.test.x, torch.device("cpu"))
    assert settings["estimator"] == "ais" and settings["start"] == "prior"
    assert 0.5 < settings["acceptance_rate"] < 0.85  # the pilot tuned the steps to the 0.65 target
    assert abs(float(est.mean() - exact.mean())) < 0.5 and float((est - exact).abs().mean()) < 0.5, est - exact
    res = _ais_metric(n_examples=5, ais_steps=20).evaluate(make_ctx(model, bundle))  # the metric's own route
    assert res.settings["estimator"] == "ais" and res.settings["n_examples"] == 5 and res.settings["steps"] == 20


def test_ais_beats_prior_importance_sampling_at_equal_cost() -> None:
    bundle = _data(latent_dim=4, n_test=30)
    model = _true_model(bundle)
    x = bundle.test.x
    exact = model.log_likelihood(x)
    metric = _ais_metric()
    ais_est, _ = metric.log_p(model, bundle, x, torch.device("cpu"), estimator="ais")
    cost = metric.ais.density_evaluations(metric.ais_chains)  # log p(x, z) evaluations per example
    assert cost == (16 + 2) * 200 * 7  # chains + pilot chains, steps, leapfrog + 2
    is_est = prior_is_log_marginal(x, model.log_joint, model.log_prior, model.sample_prior_base, cost)
    ais_err, is_err = (ais_est - exact).abs().mean(), (is_est - exact).abs().mean()
    assert ais_err < 0.25 * is_err, (float(ais_err), float(is_err))


def test_log_partition_of_quadratic_energy_matches_closed_form() -> None:
    for d, a in ((2, 1.0), (4, 0.5)):
        est, n, ess = log_partition_from_base(lambda z, a=a: -0.5 * a * z.pow(2).sum(1),
                                         lambda m, d=d: torch.randn(m, d, dtype=torch.float64), 100_000)
        assert n == 100_000 and est == pytest.approx(-0.5 * d * math.log1p(a), abs=0.02)
        # Closed form of the ESS: w = exp(-a|z|^2/2) under N(0, I_d) gives n E[w]^2 / E[w^2] =
        # n ((1 + 2a) / (1 + a)^2)^(d/2).
        assert ess / n == pytest.approx(((1 + 2 * a) / (1 + a) ** 2) ** (d / 2), rel=0.05)


@pytest.mark.parametrize("estimator", ["iwae", "ais"])
def test_ebm_prior_loglik_subtracts_estimated_log_partition(estimator: str, make_ctx) -> None:
    bundle = _data(latent_dim=2, n_test=30)
    model = _true_model(bundle, a=1.0, proposal_scale=1.3)
    exact = float(model.log_likelihood(bundle.test.x).mean())
    res = LogLikelihood(estimator=estimator, n_examples=None, k=200, ais_chains=16, ais_steps=200, leapfrog=5,
                        partition_samples=50_000).evaluate(make_ctx(model, bundle))
    assert res.settings["partition_samples"] == 50_000
    assert res.settings["log_partition"] == pytest.approx(-math.log(2.0), abs=0.03)  # Z = (1+a)^(-d/2)
    # ESS/n = ((1 + 2a) / (1 + a)^2)^(d/2) = 3/4 at a = 1, d = 2: a well-spread estimate, no warning.
    assert res.settings["partition_ess"] == pytest.approx(0.75 * 50_000, rel=0.05)
    assert "warning" not in res.settings
    assert res.value == pytest.approx(exact, abs=0.3)
    # log Z is estimated: the value is no bound, and its tag must not say it is one
    assert res.estimator == f"{estimator.upper()}-logZ"
    if estimator == "ais":
        assert res.settings["start"] == "Gaussian fitted to prior base"


@pytest.mark.parametrize(("answer", "ess_recorded", "warned"), [
    ((-0.7, 1000), None, False),          # the 2-tuple form: no ESS to record
    ((-0.7, 1000, 800.0), 800.0, False),
    ((-0.7, 1000, 3.5), 3.5, True),       # one or two draws carry the estimate
])
def test_partition_ess_is_recorded_and_a_tiny_one_flagged(answer: tuple, ess_recorded: float | None, warned: bool,
                                                          make_ctx) -> None:
    bundle = _data(latent_dim=2, n_test=10)
    model = _true_model(bundle, a=1.0)
    model.log_partition = lambda n: answer  # type: ignore[method-assign]
    res = LogLikelihood(estimator="iwae", n_examples=None, k=20).evaluate(make_ctx(model, bundle))
    assert res.settings["log_partition"] == -0.7 and res.settings["partition_samples"] == 1000
    assert res.settings.get("partition_ess") == ess_recorded
    assert ("log Z rests on 3.5 effective of 1000" in res.settings.get("warning", "")) is warned


def test_parzen_approaches_the_exact_density() -> None:
    gen = torch.Generator().manual_seed(0)
    d = 2
    split = lambda n: Split(torch.randn(n, d, generator=gen))  # noqa: E731
    bundle = DataBundle(info=DatasetInfo("gauss", (d,), "vector", has_density=True), train=split(2000),
                        val=split(300), test=split(300), log_prob=lambda x: Normal(0.0, 1.0).log_prob(x).sum(1))

    class GaussianSampler:
        capabilities = frozenset({"sample"})

        def sample(self, n: int) -> torch.Tensor:
            return torch.randn(n, d, generator=gen)

    exact = float(bundle.log_prob(bundle.test.x).mean())
    errors = []
    for n in (30, 300, 10_000):
        ctx = EvalContext(GaussianSampler(), bundle, torch.device("cpu"), 0, lambda b: None)
        res = LogLikelihood(estimator="parzen", n_examples=None, parzen_samples=n, parzen_val=300).evaluate(ctx)
        assert res.settings["estimator"] == "parzen" and res.settings["n_samples"] == n
        assert res.estimator == "Parzen" and "k" not in res.settings and "steps" not in res.settings
        errors.append(abs(res.value - exact))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.1, errors


def test_estimator_choice_and_bpd(make_ctx) -> None:
    bundle = _data()
    # excluded by the spec's alternatives, as the runner would decide: the reason lists them
    with pytest.raises(NotApplicable, match="lacks log_likelihood, or log_joint.proposal, or .* or sample"):
        evaluate_metric("loglik", make_ctx(_true_model(bundle, caps={"infer"}), bundle))
    with pytest.raises(NotApplicable, match="needs capabilities"):
        evaluate_metric("loglik", make_ctx(_true_model(bundle, caps={"sample"}), bundle), estimator="iwae")
    auto = evaluate_metric("loglik", make_ctx(_true_model(bundle, caps={"proposal", "log_joint", "log_prior"}),
                                              bundle), k=10, n_examples=5)
    assert auto.settings["estimator"] == "iwae" and auto.settings["k"] == 10 and auto.settings["n_examples"] == 5
    # the record says what the value is, and carries the per-example values it averages
    assert auto.estimator == "IWAE lb" and "steps" not in auto.settings and "n_samples" not in auto.settings
    per = torch.as_tensor(auto.per_example)
    assert per.shape == (5,) and float(per.mean()) == pytest.approx(auto.value)
    assert auto.stderr == pytest.approx(float(per.std() / math.sqrt(5)))

    class Uniform:  # density 1 on [0, 1]^D: log p = 0 nats, i.e. exactly 8 bits/dim on the 8-bit scale
        capabilities = frozenset({"log_likelihood"})

        def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0])

    digits = load_dataset("digits", seed=0)
    res = evaluate_metric("loglik_bpd", make_ctx(Uniform(), digits))
    assert res.value == pytest.approx(8.0) and res.settings["unit"] == "bpd"
    assert res.estimator == "exact" and set(res.settings) == {"estimator", "unit", "n_examples"}


def test_loglik_and_bpd_share_one_estimate_per_cell() -> None:
    """The second unit reuses the first's per-example estimates: same numbers, no second AIS/IWAE run."""
    import math as _math

    from benchbed.testing import evaluate_metric, fit, load_dataset, make_eval_context

    bundle = load_dataset("digits", seed=0)
    model, _ = fit("vae", bundle, steps=20, batch_size=100)
    ctx = make_eval_context(model, bundle, seed=0)
    nats = evaluate_metric("loglik", ctx, n_examples=50, k=20)
    calls = {"n": 0}
    original = model.proposal

    def counting(x):  # noqa: ANN001, ANN202
        calls["n"] += 1
        return original(x)

    model.proposal = counting
    bpd = evaluate_metric("loglik_bpd", ctx, n_examples=50, k=20)
    assert calls["n"] == 0
    expected = -nats.value / (bundle.info.dim * _math.log(2)) + 8
    assert abs(bpd.value - expected) < 1e-9
    assert bpd.settings["estimator"] == nats.settings["estimator"] == "iwae"
