"""Test log-likelihood, with the estimator named in every record.

Estimators, chosen by ``estimator="auto"`` in this order from the model's capabilities (the metric's
spec requires one of them, :data:`REQUIRES`, so a model with none is n/a before evaluation):

=========== ====================================== ==================================================
exact       ``log_likelihood``                      the model's exact log p(x)
iwae        ``proposal`` + ``log_joint``            IWAE bound, K samples from the encoder q(z|x)
ais         ``log_joint`` + ``log_prior``           AIS with HMC, geometric path prior -> posterior
parzen      ``sample``                              Gaussian KDE, bandwidth chosen on validation
prior_is    ``log_joint`` + ``log_prior``           (by name only) importance sampling from the prior
=========== ====================================== ==================================================

Conventions the estimators rely on (the capability protocols of ``benchbed.contracts``):
``log_joint(x, z) - log_prior(z) = log p(x | z)`` normalised in x; without ``log_partition`` the prior
``exp(log_prior)`` is normalised and ``sample_prior_base`` draws it exactly.  With an EBM prior
(``log_partition``), ``log_prior`` is ``f(z) + log p0(z)`` and ``log_partition(n)`` returns ``(log Z, n)``
or ``(log Z, n, ESS)`` for ``Z = int exp(log_prior)``; IWAE and AIS then estimate
``log int exp(log_joint) dz = log p(x) + log Z`` and subtract ``log Zhat``.  The record keeps the draw count
(``partition_samples``) and, when the model reports it, the weights' effective sample size
(``partition_ess``), with a ``warning`` below :data:`MIN_PARTITION_ESS`.
AIS for an EBM prior starts from a diagonal Gaussian fitted to base samples (it must be sampled exactly).

Units: ``loglik`` reports nats per example (higher is better); ``loglik_bpd`` reports bits per
dimension on the 8-bit scale, ``-log p(x) / (D ln 2) + 8`` for a density over [0, 1]^D (lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

import torch
from annotated_types import Ge, Gt, Interval

from benchbed.contracts import (
    DataBundle,
    EvalContext,
    HasLogJoint,
    HasLogLikelihood,
    HasLogPrior,
    HasProposal,
    HasSample,
    MetricResult,
    Model,
    ReferenceRow,
)
from benchbed.errors import NotApplicable
from benchbed.specs import AnyOf
from benchbed_metrics._batching import batches, draw_samples, head
from benchbed_metrics.ais import AISConfig, ais
from benchbed_metrics.importance import iwae_log_marginal, prior_is_log_marginal
from benchbed_metrics.parzen import default_bandwidths, parzen_log_density, select_bandwidth

Estimator = Literal["auto", "exact", "iwae", "ais", "parzen", "prior_is"]
_NEEDS: dict[str, tuple[str, ...]] = {
    "exact": ("log_likelihood",),
    "iwae": ("proposal", "log_joint"),
    "ais": ("log_joint", "log_prior"),
    "prior_is": ("log_joint", "log_prior"),
    "parzen": ("sample",),
}
_AUTO_ORDER = ("exact", "iwae", "ais", "parzen")
# Below this many effective draws an importance-sampled log Z is flagged: Var(Zhat / Z) ~ 1 / ESS, so
# the standard deviation of log Zhat is about 1 / sqrt(ESS), 0.1 nats at 100 (and its bias as large).
MIN_PARTITION_ESS = 100.0

#: The spec's ``requires``: the capabilities of at least one estimator of the auto order.
REQUIRES = AnyOf(*(_NEEDS[name] for name in _AUTO_ORDER))


class _IWAEModel(HasProposal, HasLogJoint, Protocol):
    """What the IWAE estimator calls."""


class _PriorModel(Model, HasLogJoint, HasLogPrior, Protocol):
    """What AIS and prior importance sampling call (``capabilities`` tells an EBM prior)."""


def choose_estimator(capabilities: frozenset[str] | set[str], requested: str) -> str:
    """The estimator for a model: ``requested`` if it applies, or the first applicable in auto order."""
    caps = set(capabilities)
    if requested != "auto":
        if requested not in _NEEDS:
            raise ValueError(f"loglik: unknown estimator {requested!r}; known: {sorted(_NEEDS)}")
        missing = [c for c in _NEEDS[requested] if c not in caps]
        if missing:
            raise NotApplicable(f"loglik estimator {requested!r} needs capabilities {missing}")
        if requested == "prior_is" and "log_partition" in caps:
            raise NotApplicable("loglik estimator 'prior_is' cannot sample an EBM prior exactly")
        return requested
    for name in _AUTO_ORDER:
        if all(c in caps for c in _NEEDS[name]):
            return name
    # Unreached from the runner for a model the spec admits (REQUIRES); reached by direct callers and
    # by choose_score's probing, for which "no estimator" is an answer.
    raise NotApplicable(f"loglik: no estimator applies to capabilities {sorted(caps)}; "
                        f"needs one of {[list(_NEEDS[n]) for n in _AUTO_ORDER]}")


#: Table tags (``MetricResult.estimator``) and what each means.  IWAE and AIS estimate log p(x) from
#: below in expectation (Jensen) only when the prior is normalised; with an EBM prior the estimate of
#: log Z is subtracted, which is biased low, so the result is no bound.  Parzen is a kernel density
#: fitted to samples: comparable with neither.
ESTIMATOR_TAGS: dict[str, str] = {
    "exact": "exact log-likelihood of the model",
    "IWAE lb": "importance-weighted bound with the model's encoder (a stochastic lower bound of log p(x))",
    "AIS lb": "annealed importance sampling from the prior (a stochastic lower bound of log p(x))",
    "prior IS lb": "importance sampling from the prior (a stochastic lower bound of log p(x))",
    "IWAE-logZ": "IWAE bound on the unnormalised joint minus an estimate of the EBM prior's log Z: no bound",
    "AIS-logZ": "AIS on the unnormalised joint minus an estimate of the EBM prior's log Z: no bound",
    "Parzen": "Gaussian kernel density fitted to model samples (bandwidth chosen on validation): not a bound",
    "true density": "log-density of the data-generating distribution",
}


def estimator_tag(settings: dict[str, Any]) -> str:
    """The table tag of a log-likelihood record from its settings (see :data:`ESTIMATOR_TAGS`)."""
    name = settings["estimator"]
    if name in ("iwae", "ais", "prior_is"):
        short = {"iwae": "IWAE", "ais": "AIS", "prior_is": "prior IS"}[name]
        return f"{short}-logZ" if "log_partition" in settings else f"{short} lb"
    return {"exact": "exact", "parzen": "Parzen"}.get(name, name)


def to_unit(log_p: torch.Tensor, dim: int, unit: str) -> torch.Tensor:
    """Per-example values in ``unit``: "nats" (log p) or "bpd" (8-bit bits per dimension)."""
    if unit == "nats":
        return log_p
    if unit == "bpd":
        return -log_p / (dim * math.log(2.0)) + 8.0
    raise ValueError(f"loglik: unknown unit {unit!r}")


class LogLikelihood:
    """Test log-likelihood per example.

    Args:
        estimator: see the module docstring; "auto" picks by capability.
        n_examples: first test examples evaluated (``None`` = all).
        batch_size: test examples per batch (AIS runs ``batch_size * ais_chains`` chains at once).
        k: importance samples per example (iwae, prior_is).
        ais_chains, ais_steps, leapfrog, step_size, target_accept, ais_schedule, pilot_chains: AIS
            settings (a pilot run of ``pilot_chains`` per example tunes the step sizes; see ais.py).
        parzen_samples, parzen_val, parzen_bandwidths: Parzen samples, validation examples, grid
            (empty = the default grid of :func:`default_bandwidths`).
        partition_samples: base samples for ``log_partition`` (EBM priors).

    The unit is a class attribute, not a setting: it fixes the direction of the registered metric.
    """

    unit: str = "nats"

    def __init__(
        self,
        *,
        estimator: Estimator = "auto",
        n_examples: Annotated[int | None, Gt(0)] = 1000,
        batch_size: Annotated[int, Gt(0)] = 100,
        k: Annotated[int, Gt(0)] = 1000,
        ais_chains: Annotated[int, Gt(0)] = 16,
        ais_steps: Annotated[int, Gt(0)] = 500,
        leapfrog: Annotated[int, Gt(0)] = 10,
        step_size: Annotated[float, Gt(0)] = 0.05,
        target_accept: Annotated[float, Interval(gt=0, lt=1)] = 0.65,
        ais_schedule: Literal["sigmoid", "geometric", "linear"] = "geometric",
        pilot_chains: Annotated[int, Ge(0)] = 2,
        parzen_samples: Annotated[int, Gt(0)] = 10_000,
        parzen_val: Annotated[int, Gt(0)] = 1000,
        parzen_bandwidths: tuple[Annotated[float, Gt(0)], ...] = (),
        partition_samples: Annotated[int, Gt(0)] = 100_000,
    ) -> None:
        self.estimator = estimator
        self.n_examples, self.batch_size, self.k = n_examples, batch_size, k
        self.ais_chains = ais_chains
        self.ais = AISConfig(n_steps=ais_steps, n_leapfrog=leapfrog, step_size=step_size,
                             target_accept=target_accept, pilot_chains=pilot_chains, schedule=ais_schedule)
        self.parzen_samples, self.parzen_val = parzen_samples, parzen_val
        self.parzen_bandwidths = tuple(parzen_bandwidths)
        self.partition_samples = partition_samples

    # -- estimators: each returns per-example log p(x) [N] (nats) and its settings ----------------

    def _exact(self, model: HasLogLikelihood, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, dict]:
        lp = torch.cat([model.log_likelihood(b.to(device)).double().cpu() for b in batches(x, self.batch_size)])
        return lp, {}

    def _iwae(self, model: _IWAEModel, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, dict]:
        out = [iwae_log_marginal(b.to(device), model.log_joint, model.proposal(b.to(device)), self.k).cpu()
               for b in batches(x, self.batch_size)]
        return torch.cat(out), {"k": self.k, "proposal": "model encoder q(z|x)"}

    def _prior_is(self, model: _PriorModel, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, dict]:
        out = [prior_is_log_marginal(b.to(device), model.log_joint, model.log_prior, model.sample_prior_base,
                                     self.k).cpu() for b in batches(x, self.batch_size)]
        return torch.cat(out), {"k": self.k, "proposal": "prior"}

    def _ais(self, model: _PriorModel, x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, dict]:
        k = self.ais_chains
        ebm = "log_partition" in model.capabilities
        if ebm:  # the tilted prior cannot be sampled exactly: start from a Gaussian fitted to the base
            base = model.sample_prior_base(max(10_000, 10 * k)).detach()
            start = torch.distributions.Independent(
                torch.distributions.Normal(base.mean(0), base.std(0).clamp_min(1e-6)), base.dim() - 1)
            sample_start, log_start = (lambda n: start.sample((n,))), start.log_prob
        else:
            sample_start, log_start = model.sample_prior_base, model.log_prior
        out, acc = [], []
        for b in batches(x, self.batch_size):
            b = b.to(device)

            def make_target(r: int, b: torch.Tensor = b) -> Callable[[torch.Tensor], torch.Tensor]:
                xr = b.repeat_interleave(r, dim=0)  # chains of example i: rows i*r .. i*r+r-1
                return lambda z: model.log_joint(xr, z)

            res = ais(make_target, log_start, sample_start, b.shape[0], k, self.ais)
            out.append(res.log_marginal().cpu())
            acc.append(res.acceptance_rate)
        return torch.cat(out), {"chains": k, "steps": self.ais.n_steps, "leapfrog": self.ais.n_leapfrog,
                                "initial_step_size": self.ais.step_size, "target_accept": self.ais.target_accept,
                                "pilot_chains": self.ais.pilot_chains, "schedule": self.ais.schedule,
                                "acceptance_rate": sum(acc) / len(acc),
                                "start": "Gaussian fitted to prior base" if ebm else "prior"}

    def _parzen(self, model: HasSample, data: DataBundle, x: torch.Tensor,
                device: torch.device) -> tuple[torch.Tensor, dict]:
        samples = draw_samples(model, self.parzen_samples, batch_size=1000)
        grid = list(self.parzen_bandwidths) or default_bandwidths(data.info.kind, data.train.x)
        val = head(data.val, self.parzen_val).x
        h, scores = select_bandwidth(val, samples, grid, device=device)
        extra = {"n_samples": self.parzen_samples, "bandwidth": h, "n_val": len(val),
                 "val_scores": {f"{g:.4g}": v for g, v in scores.items()}}
        if len(grid) > 1 and h in (min(grid), max(grid)):
            extra["warning"] = f"bandwidth {h:.4g} is at the edge of the grid"
        return parzen_log_density(x, samples, h, device=device), extra

    # -------------------------------------------------------------------------------------------

    def log_p(self, model: Model, data: DataBundle, x: torch.Tensor, device: torch.device,
              estimator: str | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Per-example estimates of log p(x) [N] (nats) for x [N, *D], and the settings that produced them."""
        name = estimator or choose_estimator(frozenset(model.capabilities), self.estimator)
        if name == "parzen":
            log_p, extra = self._parzen(model, data, x, device)
        else:
            log_p, extra = getattr(self, f"_{name}")(model, x, device)
        settings: dict[str, Any] = {"estimator": name, **extra}
        if name in ("iwae", "ais") and "log_partition" in model.capabilities:
            log_z, n_z, *rest = model.log_partition(self.partition_samples)
            log_p = log_p - float(log_z)
            settings.update(log_partition=float(log_z), partition_samples=int(n_z),
                            partition_note="log Z from base-Gaussian samples; biased low, so log p biased high")
            if rest:  # the model reported the effective sample size of its importance weights
                ess = float(rest[0])
                settings["partition_ess"] = ess
                if ess < MIN_PARTITION_ESS:
                    settings["warning"] = (f"log Z rests on {ess:.3g} effective of {int(n_z)} base draws "
                                           f"(< {MIN_PARTITION_ESS:g}): the estimate is unreliable")
        if not torch.isfinite(log_p).all():
            raise ValueError(f"loglik ({name}): non-finite log-likelihood estimates for {type(model).__name__}")
        return log_p, settings

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        test = head(ctx.data.test, self.n_examples)
        # ``loglik`` and ``loglik_bpd`` with equal settings share one estimate per cell: the unit is
        # only a change of scale, and AIS is the most expensive thing a cell computes.
        key = f"loglik:{sorted((k, repr(v)) for k, v in vars(self).items())}:{test.content_hash()}"
        if key not in ctx.cache:
            ctx.cache[key] = self.log_p(ctx.model, ctx.data, test.x, ctx.device)
        log_p, extra = ctx.cache[key]
        data = ctx.data
        settings: dict[str, Any] = {**extra, "unit": self.unit, "n_examples": len(test)}
        values = to_unit(log_p, data.info.dim, self.unit)
        n = values.shape[0]
        stderr = float(values.std() / math.sqrt(n)) if n > 1 else None
        return MetricResult(
            value=float(values.mean()),
            settings=settings,
            details={"nats_per_example": float(log_p.mean()), "test_split_hash": test.content_hash()},
            estimator=estimator_tag(settings), stderr=stderr, per_example=values,
        )

    def references(self, data: DataBundle) -> list[ReferenceRow]:
        """The true test log-likelihood of synthetic data with a known density (same test examples)."""
        if not data.info.has_density or data.log_prob is None or (self.unit == "bpd" and data.info.kind != "image"):
            return []
        test = head(data.test, self.n_examples)
        with torch.no_grad():
            log_p = torch.cat([data.log_prob(b).double() for b in batches(test.x, 1000)])
        values = to_unit(log_p, data.info.dim, self.unit)
        result = MetricResult(
            value=float(values.mean()),
            settings={"estimator": "true density", "unit": self.unit, "n_examples": len(test)},
            details={"test_split_hash": test.content_hash()},
            estimator="true density", stderr=float(values.std() / math.sqrt(len(values))), per_example=values,
        )
        return [ReferenceRow(label="true density", result=result)]


class LogLikelihoodBPD(LogLikelihood):
    """:class:`LogLikelihood` in bits per dimension (8-bit scale) for image data; lower is better."""

    unit = "bpd"
