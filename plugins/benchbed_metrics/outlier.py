"""Outlier AUROC / AUPRC with the held-out-class protocol.

For each held-out class c: ``variant = data.hold_out((c,))`` (train and val without c),
``m = ctx.train_variant(variant)`` (the runner caches the training, so both metrics share it), score
the whole test split with ``m``; class c is the positive (anomalous) class.  Scores are continuous.
The value is the mean over classes; each class's value is kept in ``details``.

Scores (``score`` setting), higher = more anomalous:
* ``anomaly_score``: the model family's own score (LEBM: -log p(x, z) at inferred z, unnormalised);
* ``nll``: ``-log p(x)`` from the ``loglik`` estimators (settings in ``nll_settings``);
* ``recon``: per-example reconstruction MSE;
* ``auto``: the first of anomaly_score, nll (exact/iwae/ais), recon, nll (parzen) the model supports
  (the metric's spec requires one of them, :data:`REQUIRES`, so a model with none is n/a up front).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
from annotated_types import Ge, Gt

from benchbed.contracts import (
    DataBundle,
    DatasetInfo,
    EvalContext,
    HasAnomalyScore,
    HasReconstruct,
    MetricResult,
    Model,
)
from benchbed.errors import NotApplicable
from benchbed.specs import AnyOf
from benchbed_metrics._batching import head, map_batches
from benchbed_metrics.loglik import LogLikelihood, choose_estimator
from benchbed_metrics.ranking import auroc, average_precision

Score = Literal["auto", "anomaly_score", "nll", "recon"]

#: The spec's ``requires``: what ``score="auto"`` needs, in the order of :func:`choose_score`: the
#: model's own score, an exact/IWAE/AIS log-likelihood, reconstructions, or samples (Parzen).
REQUIRES = AnyOf("anomaly_score", "log_likelihood", {"log_joint", "proposal"}, {"log_joint", "log_prior"},
                 "reconstruct", "sample")


#: Table tags (``MetricResult.estimator``): which score ranked the test examples.
SCORE_TAGS: dict[str, str] = {
    "model score": "the model family's own anomaly_score (e.g. LEBM: -log p(x, z) at the inferred z)",
    "recon": "reconstruction error",
    **{f"NLL {t}": f"-log p(x), {m}" for t, m in (
        ("exact", "exact"), ("IWAE", "IWAE bound"), ("AIS", "AIS"), ("Parzen", "Parzen KDE"),
        ("prior IS", "importance sampling from the prior"))},
}


def score_tag(score: str) -> str:
    """The table tag of a score name as stored in settings ("anomaly_score", "recon", "nll (iwae)")."""
    if score == "anomaly_score":
        return "model score"
    if score.startswith("nll ("):
        est = score[5:-1]
        return "NLL " + {"iwae": "IWAE", "ais": "AIS", "parzen": "Parzen", "prior_is": "prior IS"}.get(est, est)
    return score


def choose_score(capabilities: set[str], requested: str, nll_estimator: str) -> tuple[str, str | None]:
    """``(score, nll estimator or None)`` for a model's capabilities."""
    def nll(allowed: tuple[str, ...]) -> str | None:
        try:
            est = choose_estimator(frozenset(capabilities), nll_estimator)
        except NotApplicable:
            return None
        return est if est in allowed else None

    if requested == "anomaly_score" or (requested == "auto" and "anomaly_score" in capabilities):
        if "anomaly_score" not in capabilities:
            raise NotApplicable("outlier score 'anomaly_score' needs the anomaly_score capability")
        return "anomaly_score", None
    if requested == "nll":
        est = nll(("exact", "iwae", "ais", "parzen", "prior_is"))
        if est is None:
            raise NotApplicable(f"outlier score 'nll': no log-likelihood estimator applies ({nll_estimator!r})")
        return "nll", est
    if requested == "recon" and "reconstruct" not in capabilities:
        raise NotApplicable("outlier score 'recon' needs the reconstruct capability")
    if requested == "recon":
        return "recon", None
    est = nll(("exact", "iwae", "ais"))
    if est is not None:
        return "nll", est
    if "reconstruct" in capabilities:
        return "recon", None
    est = nll(("parzen",))
    if est is not None:
        return "nll", est
    raise NotApplicable(f"outlier detection: no anomaly score for capabilities {sorted(capabilities)}")


class OutlierDetection:
    """Held-out-class outlier detection; subclasses pick AUROC or AUPRC.

    Args:
        classes: held-out classes, one training each; empty = every class of the data set.
        score: "auto", "anomaly_score", "nll" or "recon" (see the module docstring).
        n_examples: first test examples scored (``None`` = all).
        batch_size: examples per scoring call.
        nll_settings: settings of the ``loglik`` estimator used by ``score="nll"``.
    """

    statistic: Callable[..., float] = staticmethod(auroc)
    statistic_name = "AUROC"

    def __init__(
        self,
        *,
        classes: tuple[Annotated[int, Ge(0)], ...] = (),
        score: Score = "auto",
        n_examples: Annotated[int | None, Gt(0)] = None,
        batch_size: Annotated[int, Gt(0)] = 500,
        nll_settings: dict[str, Any] | None = None,
    ) -> None:
        self.classes = tuple(classes)
        self.score = score
        self.n_examples = n_examples
        self.batch_size = batch_size
        self.nll_settings = dict(nll_settings or {"k": 100, "ais_steps": 100})

    def check_data(self, data: DataBundle) -> None:
        """Every held-out class must be a class of the data set (checked before training)."""
        n = data.info.n_classes
        if bad := [c for c in self.classes if not 0 <= c < n]:
            raise ValueError(f"held-out classes {bad} are not classes of data set {data.info.name!r} (0..{n - 1})")

    def held_out_trainings(self, info: DatasetInfo) -> list[tuple[int, ...]]:
        """The trainings this metric needs, one per held-out class (``(c,)``): every class when
        ``classes`` is empty, none when the data set has fewer than two classes (the metric is n/a).
        The runner plans each as a cell of the grid; ``ctx.train_variant(data.hold_out((c,)))`` then
        gives its trained model."""
        if info.n_classes < 2:
            return []
        return [(c,) for c in (self.classes or tuple(range(info.n_classes)))]

    def _scores(self, model: Model, ctx: EvalContext, x: torch.Tensor, score: str,
                est: str | None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Scores [N] of x [N, *D] and the settings of the estimator behind them (NLL scores only)."""
        if score == "anomaly_score":
            assert isinstance(model, HasAnomalyScore)
            return map_batches(model.anomaly_score, x, batch_size=self.batch_size, device=ctx.device).double(), {}
        if score == "recon":
            assert isinstance(model, HasReconstruct)
            x_hat = map_batches(model.reconstruct, x, batch_size=self.batch_size, device=ctx.device)
            return (x_hat.double() - x.double()).pow(2).flatten(1).mean(dim=1), {}
        log_p, settings = LogLikelihood(**self.nll_settings).log_p(model, ctx.data, x, ctx.device, estimator=est)
        return -log_p, settings

    def _class_scores(self, ctx: EvalContext, c: int) -> tuple[torch.Tensor, torch.Tensor, str, dict[str, Any]]:
        """(scores [N], positive mask [N], score name, estimator settings) for held-out class c, shared
        through ctx.cache."""
        variant = ctx.data.hold_out((c,))
        test = head(variant.test, self.n_examples)
        key = f"outlier:{c}:{self.score}:{sorted(self.nll_settings.items())}:{len(test)}"
        if key not in ctx.cache:
            with torch.enable_grad():  # metrics run under no_grad; training a variant needs gradients
                model = ctx.train_variant(variant)
            score, est = choose_score(set(model.capabilities), self.score,
                                      self.nll_settings.get("estimator", "auto"))
            assert test.y is not None
            scores, settings = self._scores(model, ctx, test.x, score, est)
            ctx.cache[key] = (scores, test.y == c, score if est is None else f"nll ({est})", settings)
        return ctx.cache[key]

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        info = ctx.data.info
        if info.n_classes < 2 or ctx.data.test.y is None:
            raise NotApplicable(f"outlier detection needs a labelled data set with >= 2 classes; "
                                f"{info.name!r} has {info.n_classes}")
        classes = self.classes or tuple(range(info.n_classes))
        per_class: dict[str, float] = {}
        score_names = set()
        nll_used: dict[str, Any] = {}
        all_scores = []
        for c in classes:
            scores, positive, name, settings = self._class_scores(ctx, c)
            if settings:  # what produced an NLL score: estimator, sample counts (the last class's)
                nll_used = {k: v for k, v in settings.items() if k not in ("val_scores", "acceptance_rate")}
            if not positive.any() or positive.all():
                raise NotApplicable(f"outlier detection: the scored test examples hold no/only class {c}")
            per_class[str(c)] = type(self).statistic(scores.numpy(), positive.numpy())
            score_names.add(name)
            all_scores.append(scores)
        value = sum(per_class.values()) / len(per_class)
        return MetricResult(
            estimator=" + ".join(sorted(score_tag(n) for n in score_names)),
            # the scores of the scored test examples, class after class in ``classes`` order
            per_example=torch.cat(all_scores),
            value=value,
            settings={"statistic": self.statistic_name, "score": sorted(score_names), "classes": list(classes),
                      "n_examples": int(head(ctx.data.test, self.n_examples).x.shape[0]),
                      "protocol": "held-out class = positive; train/val without it; test split scored",
                      **({"nll": nll_used} if nll_used else {})},
            details={"per_class": per_class},
        )


class OutlierAUROC(OutlierDetection):
    """Mean AUROC over held-out classes."""


class OutlierAUPRC(OutlierDetection):
    """Mean average precision (AUPRC) over held-out classes, the held-out class being positive."""

    statistic = staticmethod(average_precision)
    statistic_name = "AUPRC"
