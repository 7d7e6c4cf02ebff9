"""Frozen, keyword-only spec dataclasses: what a plugin hands to ``register``.

A spec holds a ``factory`` plus metadata.  The factory's keyword-only signature is the component's
hyperparameter schema (scikit-learn's rule): suite parameters are checked against it, and the
parameters become leaderboard columns.  Constructing the factory's product must do no work;
work happens in ``setup``/``load``/``evaluate``/``sample``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from benchbed.errors import PluginError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, init=False)
class AnyOf:
    """Alternative capability sets: satisfied by a model that has *every* capability of *at least one*.

    ``AnyOf("log_likelihood", {"log_joint", "proposal"}, "sample")``: each argument is one
    alternative, an iterable of capability names or a single name.  Alternatives keep their order
    (the order a metric tries them in, for the reader); the names are checked by :class:`MetricSpec`.

    Raises:
        PluginError: no alternative, or an empty one (it would make every other alternative moot).
    """

    alternatives: tuple[frozenset[str], ...]

    def __init__(self, *alternatives: str | Iterable[str]) -> None:
        alts = tuple(frozenset({a}) if isinstance(a, str) else frozenset(a) for a in alternatives)
        if not alts or not all(alts):
            raise PluginError(f"AnyOf needs at least one alternative, and none empty; got {alternatives!r}")
        object.__setattr__(self, "alternatives", alts)

    def satisfied_by(self, capabilities: Iterable[str]) -> bool:
        """Whether ``capabilities`` include every name of some alternative."""
        caps = set(capabilities)
        return any(alt <= caps for alt in self.alternatives)

    def __str__(self) -> str:
        """``"log_likelihood, or log_joint+proposal, or sample"`` (names within an alternative sorted)."""
        return ", or ".join("+".join(sorted(alt)) for alt in self.alternatives)


Requirement: TypeAlias = frozenset[str] | AnyOf
"""What :attr:`MetricSpec.requires` holds: a plain set (all of it) or :class:`AnyOf` alternatives."""


def requirement_alternatives(requires: Requirement) -> tuple[frozenset[str], ...]:
    """The alternatives of a requirement: a plain set is the single alternative "all of these"."""
    return requires.alternatives if isinstance(requires, AnyOf) else (frozenset(requires),)


@dataclass(frozen=True, kw_only=True)
class ComponentSpec:
    """Common fields of every spec.

    Attributes:
        name: registered name, lower-case ``[a-z][a-z0-9_]*``; unique per kind across all plugins.
        factory: callable taking keyword-only hyperparameters and returning the component.
        description: one line shown by ``benchbed list``.
        tags: free-form labels (``"image"``, ``"ebm"``, ...).
        test_params: small keyword parameters for the conformance checks
            (:mod:`benchbed.testing`), e.g. ``{"latent_dim": 2, "hidden": (16,)}``; merged over the
            factory's defaults so that every registered component can be checked in seconds.
        revision: the revision of the numbers the component produces.  Bump it with a change that
            alters them beyond rounding (a bug fix, a different computation behind the same
            parameters): a non-zero revision is part of the identity of every suite entry using the
            component, so the run ids of the cells of a model, sampler or data set change (stored and
            published results of the old code are not reused: they are trained again), and for a
            metric its settings hash (it is evaluated again on the stored models).  A change that keeps
            the numbers (speed, wording) keeps the revision; 0 adds nothing to any identity.
    """

    kind: ClassVar[str] = "component"

    name: str
    factory: Callable[..., Any]
    description: str = ""
    tags: tuple[str, ...] = ()
    test_params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    revision: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise PluginError(
                f"{self.kind} name {self.name!r} is invalid: use lower-case letters, digits and '_', "
                "starting with a letter"
            )
        if not callable(self.factory):
            raise PluginError(f"{self.kind} {self.name!r}: factory {self.factory!r} is not callable")
        if not isinstance(self.tags, tuple):
            raise PluginError(f"{self.kind} {self.name!r}: tags must be a tuple, got {type(self.tags).__name__}")
        if not isinstance(self.revision, int) or isinstance(self.revision, bool) or self.revision < 0:
            raise PluginError(f"{self.kind} {self.name!r}: revision must be a non-negative int, got {self.revision!r}")


@dataclass(frozen=True, kw_only=True)
class ModelSpec(ComponentSpec):
    """A latent-variable model.

    The factory returns a :class:`benchbed.contracts.Model`.

    Attributes:
        uses_sampler: the model infers or samples by dynamics, so the suite's sampler axis applies
            (one cell per sampler).  Models without dynamics (VAE, GMMN) get one cell.
        default_sampler: sampler used when the suite names none.
        samplers: names of the samplers the model accepts; ``None`` means any.
        sampler_roles: the roles the model asks its sampler provider for in ``setup`` (e.g.
            ``("prior", "posterior")``); a suite's per-role sampler table must name one of them, so a
            misspelt role is an error at load.  ``None``: undeclared (any role name is accepted).
        one_shot: the model is fitted in one call, ``fit(train: Split)``, instead of a step loop
            (e.g. factor analysis): the runner calls ``fit`` once and no step budget applies; it need
            not define ``train_step`` and may report ``n_parameters() == 0`` when it has no tensors.
    """

    kind: ClassVar[str] = "model"

    uses_sampler: bool = False
    default_sampler: str | None = None
    samplers: tuple[str, ...] | None = None
    sampler_roles: tuple[str, ...] | None = None
    one_shot: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.uses_sampler and not self.default_sampler:
            raise PluginError(f"model {self.name!r} uses a sampler but names no default_sampler")

    def accepts_sampler(self, sampler: str) -> bool:
        """Whether ``sampler`` may drive this model's dynamics."""
        return self.samplers is None or sampler in self.samplers


@dataclass(frozen=True, kw_only=True)
class SamplerSpec(ComponentSpec):
    """A latent sampler; the factory returns a :class:`benchbed.contracts.Sampler`."""

    kind: ClassVar[str] = "sampler"


@dataclass(frozen=True, kw_only=True)
class DatasetSpec(ComponentSpec):
    """A data set; the factory returns a :class:`benchbed.contracts.DatasetSource`."""

    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True, kw_only=True)
class MetricSpec(ComponentSpec):
    """An evaluation metric; the factory returns a :class:`benchbed.contracts.Metric`.

    Attributes:
        higher_is_better: direction, shown as an arrow in tables.
        requires: model capabilities the metric needs (see :class:`benchbed.contracts.Capability`),
            decided up front: a model lacking them makes the cell ``n/a`` with that reason, so
            ``evaluate`` never sees such a model.  A plain set means all of it; :class:`AnyOf` lists
            alternatives, e.g. ``AnyOf("log_likelihood", {"log_joint", "proposal"}, "sample")``
            (the metric then decides in ``evaluate`` which alternative it uses).
        data_kinds: the data kinds (``"vector"``, ``"image"``) it applies to.
        needs_labels: it only applies to data sets with labels.
        label: column title in tables (defaults to ``name``); never call an FD on other features "FID".
        estimators: the tags its results may carry in ``MetricResult.estimator``, each with a
            one-line meaning shown in the tables' notes (e.g. ``{"IWAE lb": "importance-weighted
            lower bound ..."}``).
        ranks_across_estimators: values with different tags measure the same thing and may be
            ranked against each other (outlier AUROC: the score is part of the method).  ``False``:
            the best mark is only given among values with the same tag (log-likelihood estimators).
    """

    kind: ClassVar[str] = "metric"

    higher_is_better: bool
    requires: Requirement = field(default_factory=frozenset)
    data_kinds: frozenset[str] = frozenset({"vector", "image"})
    needs_labels: bool = False
    label: str = ""
    estimators: Mapping[str, str] = field(default_factory=dict, hash=False)
    ranks_across_estimators: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        from benchbed.contracts import Capability

        if isinstance(self.requires, str) or not isinstance(self.requires, AnyOf | Iterable):
            raise PluginError(f"metric {self.name!r}: requires must be a set of capability names or AnyOf(...), "
                              f"got {self.requires!r}")
        if not isinstance(self.requires, AnyOf | frozenset):
            object.__setattr__(self, "requires", frozenset(self.requires))
        unknown = set().union(*self.alternatives) - {c.value for c in Capability}
        if unknown:
            raise PluginError(
                f"metric {self.name!r} requires unknown capabilities {sorted(unknown)}; "
                f"known: {sorted(c.value for c in Capability)}"
            )

    @property
    def alternatives(self) -> tuple[frozenset[str], ...]:
        """:attr:`requires` as alternatives (see :func:`requirement_alternatives`)."""
        return requirement_alternatives(self.requires)

    @property
    def requires_text(self) -> str:
        """:attr:`requires` for people: ``"reconstruct"``, ``"a, b"`` (all of) or ``"a, or b+c"``
        (alternatives); empty when the metric needs nothing."""
        if isinstance(self.requires, AnyOf):
            return str(self.requires)
        return ", ".join(sorted(self.requires))

    @property
    def title(self) -> str:
        """Column title used in leaderboards."""
        return self.label or self.name


SPEC_TYPES: dict[str, type[ComponentSpec]] = {
    "model": ModelSpec,
    "sampler": SamplerSpec,
    "dataset": DatasetSpec,
    "metric": MetricSpec,
}


#: Keys of a claim's table in a claims file (``claims.toml``): the fields of :class:`ClaimSpec`.
CLAIM_KEYS = ("paper", "statement", "dataset", "metric", "better", "worse", "detail", "curve", "higher_is_better",
              "finding")


@dataclass(frozen=True, kw_only=True)
class ClaimSpec:
    """A published claim a suite's tables can test: entry ``better`` beats entry ``worse`` on one quantity.

    Written in a suite's claims file (``claims.toml`` beside ``suite.toml``) or registered by a plugin
    through ``benchbed_register_claims``; a registered claim applies to every suite that has its data
    set, its metric and both entries (:mod:`benchbed.claims`, ``docs/results.md#claims``).  Not a
    component: it has no factory and never enters a run id.

    Attributes:
        id: lower-case ``[a-z][a-z0-9_]*``; unique per suite (a suite's file overrides a plugin's claim
            of the same id).
        paper: short citation, e.g. ``"Pang et al. 2020"``.
        statement: the claim in words.
        dataset: the data set label in the suite.
        metric: the metric label in the suite; its spec's ``higher_is_better`` gives the direction.
            Empty only with ``curve``.
        better, worse: the entries claimed better and worse, as the leaderboard names its rows: a model
            label (``"vae"``), a model label with its sampler (``"lebm + langevin"``; a model label alone
            names the model's only row on the data set), or ``"@reference"``: the metric's model-free
            reference row on the data set (e.g. the logistic-regression baseline of ``accuracy``).
        detail: compare a value kept in the metric records' details instead of the value itself: a
            dotted key, e.g. ``"per_class.1"`` (the outlier metrics' value for held-out class 1).
        curve: compare a training-curve key instead of a metric (e.g. ``"reg_mmd2"``): per seed, the
            mean of the key over the points recorded in the last tenth of training.
        higher_is_better: the direction of a ``curve``; required with ``curve``, not allowed with a
            metric (the metric's spec says it).
        finding: optional Markdown: what an investigation found about the verdict (why a claim is not
            reproduced, with a link to the evidence); published beside the verdict, never used to
            decide it.

    Raises:
        PluginError: a field has the wrong type or value; the message names the claim id, key and value.
    """

    kind: ClassVar[str] = "claim"

    id: str
    paper: str
    statement: str
    dataset: str
    better: str
    worse: str
    metric: str = ""
    detail: str = ""
    curve: str = ""
    higher_is_better: bool | None = None
    finding: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _NAME.match(self.id):
            raise PluginError(f"claim id {self.id!r} is invalid: use lower-case letters, digits and '_', "
                              "starting with a letter")
        for key in ("paper", "statement", "dataset", "better", "worse", "metric", "detail", "curve", "finding"):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise PluginError(f"claim {self.id!r}: {key} = {value!r} must be a string")
            if key in ("paper", "statement", "dataset", "better", "worse") and not value.strip():
                raise PluginError(f"claim {self.id!r}: {key} = {value!r} must not be empty")
        if bool(self.metric) == bool(self.curve):
            raise PluginError(f"claim {self.id!r}: give exactly one of metric and curve (metric = {self.metric!r}, "
                              f"curve = {self.curve!r})")
        if self.curve and self.detail:
            raise PluginError(f"claim {self.id!r}: detail = {self.detail!r} applies to a metric, not to curve = "
                              f"{self.curve!r}")
        if self.higher_is_better is not None and not isinstance(self.higher_is_better, bool):
            raise PluginError(f"claim {self.id!r}: higher_is_better = {self.higher_is_better!r} must be true or false")
        if self.curve and self.higher_is_better is None:
            raise PluginError(f"claim {self.id!r}: curve = {self.curve!r} needs higher_is_better (true or false)")
        if self.metric and self.higher_is_better is not None:
            raise PluginError(f"claim {self.id!r}: higher_is_better = {self.higher_is_better!r} is not allowed with "
                              f"metric = {self.metric!r} (the metric's spec gives the direction)")
        if self.detail and any(not part for part in self.detail.split(".")):
            raise PluginError(f"claim {self.id!r}: detail = {self.detail!r} must be a dotted key such as "
                              "'per_class.1'")
        if self.better == self.worse:
            raise PluginError(f"claim {self.id!r}: better = worse = {self.better!r}; a claim compares two entries")


@dataclass(frozen=True, kw_only=True)
class TrackerSpec(ComponentSpec):
    """An experiment tracker (TensorBoard, MLflow, W&B): where each trained cell's curves, metrics and
    sample grid are also sent when a suite's ``[tracking]`` or ``--track`` asks for it.

    The factory's keyword parameters are the tracker's settings (a suite's ``[tracking.<name>]``
    table); it returns one :class:`benchbed.tracking.Tracker` per cell and must not import its library
    or touch files before ``start``.  Trackers never enter a run id.
    """

    kind: ClassVar[str] = "tracker"


SPEC_TYPES["tracker"] = TrackerSpec
