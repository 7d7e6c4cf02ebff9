"""Contracts between the four kinds of component (see ``docs/architecture.md``).

* A **dataset** source loads a :class:`DataBundle`: deterministic train/val/test splits in a fixed
  scale (images: float in [0, 1], channels first), labels where it has them, and :class:`DatasetInfo`.
* A **model** is built with keyword hyperparameters (no work), then ``setup(ctx)`` builds its
  networks, ``train_step(batch)`` is called ``budget.steps`` times by the runner, and the trained
  model offers the capabilities it declares in ``capabilities``: each :class:`Capability` name
  stands for the methods of one protocol (``HasSample``, ``HasLogJoint``, ...; see
  :data:`CAPABILITY_PROTOCOLS`).
* A **sampler** acts on any latent log-density: ``sample(log_density, z0)`` returns samples plus
  diagnostics.  It enables gradients for ``z`` itself, so it works under ``torch.no_grad()``.
* A **metric** declares the capabilities it needs on its spec (all of a set, or any one of several
  sets: :class:`benchbed.specs.AnyOf`); a cell whose model lacks them is n/a before evaluation.  It
  computes a :class:`MetricResult` from an :class:`EvalContext`.

Shapes: ``B`` = batch, ``D`` = data dims (``(C, H, W)`` images or ``(d,)`` vectors), ``Z`` = latent dims.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, runtime_checkable

import torch


class Capability(StrEnum):
    """What a trained model can do: the names a model lists in ``model.capabilities``.

    Each name stands for the methods of one protocol (:data:`CAPABILITY_PROTOCOLS`), which states
    their signatures, shapes and meaning once for every model and metric; :func:`missing_methods`
    tells which declared capabilities a model lacks the methods of.
    """

    SAMPLE = "sample"
    INFER = "infer"
    RECONSTRUCT = "reconstruct"
    LOG_JOINT = "log_joint"
    LOG_PRIOR = "log_prior"
    LOG_PARTITION = "log_partition"
    PROPOSAL = "proposal"
    ANOMALY_SCORE = "anomaly_score"
    CLASSIFY = "classify"
    LOG_LIKELIHOOD = "log_likelihood"


# Capability protocols.  Common rules: capability methods are called under ``torch.no_grad()`` and
# must work there (a model that needs gradients inside, e.g. posterior Langevin, enables them for its
# own latents); inputs ``x`` are [B, *D] float32 in the data set's scale (the scale of
# :class:`DataBundle`), already on the model's device; returned tensors are float32 on the model's
# device unless stated; log-densities are in nats.  Randomness comes from torch's global RNG, so a
# seeded caller gets reproducible draws.


@runtime_checkable
class HasSample(Protocol):
    """``sample``: draws from the model's distribution over data."""

    def sample(self, n: int) -> torch.Tensor:
        """``n`` independent samples [n, *D] in the data set's scale.

        Convention of the built-in models: the mean of the decoder p(x | z) (the generator output
        g(z)) at latents z drawn from the model's prior, with no observation noise added.  Where the
        prior is an energy-based model, z comes from the model's own prior dynamics (short-run MCMC,
        so the draws are approximate); a generator without a likelihood (e.g. an MMD-trained
        network) returns its output at its noise draws.  A third-party model should follow the same
        convention or say in its description what its samples are.
        """
        ...


@runtime_checkable
class HasInfer(Protocol):
    """``infer``: a point estimate of the latent code of each example."""

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, *D] -> ``z`` [B, *Z]: an encoder mean or the end of posterior dynamics."""
        ...


@runtime_checkable
class HasReconstruct(Protocol):
    """``reconstruct``: decode the inferred latent code."""

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, *D] -> ``x_hat`` [B, *D] in the data set's scale (the decoder mean, no noise)."""
        ...


@runtime_checkable
class HasLogJoint(Protocol):
    """``log_joint``: the joint log-density of data and latents."""

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``x`` [B, *D], ``z`` [B, *Z] -> [B]: ``log p(x | z) + log_prior(z)``.

        ``log p(x | z)`` is normalised in x (nats of the data-scale x, any change of scale's log
        determinant included), so ``log_joint - log_prior`` is the decoder likelihood; an EBM
        prior's ``log Z`` is left out (see :class:`HasLogPartition`).  Differentiable in ``z``.
        """
        ...


@runtime_checkable
class HasLogPrior(Protocol):
    """``log_prior``: the prior's log-density, and draws of the prior or of its base.

    A model declaring ``log_prior`` also provides ``sample_prior_base``: exact draws of the prior
    ``exp(log_prior)`` when the model does not declare ``log_partition`` (then ``log_prior`` is
    normalised), else exact draws of the base density ``p0`` the EBM prior tilts.
    """

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` [B, *Z] -> [B]: ``log p(z)``, normalised unless the model declares ``log_partition``
        (then ``f(z) + log p0(z)`` with ``log Z`` left out).  Differentiable in ``z``."""
        ...

    def sample_prior_base(self, n: int) -> torch.Tensor:
        """``n`` exact draws [n, *Z]: of the prior itself, or of its base ``p0`` with ``log_partition``."""
        ...


@runtime_checkable
class HasLogPartition(HasLogPrior, Protocol):
    """``log_partition``: an estimate of the EBM prior's normaliser.

    Only for models whose prior is ``exp(log_prior)`` up to a constant; such a model also offers
    the :class:`HasLogPrior` methods, with ``sample_prior_base`` drawing the base ``p0``.
    """

    def log_partition(self, n: int) -> tuple[float, int] | tuple[float, int, float]:
        """``(estimate of log ∫ exp(log_prior(z)) dz, number of samples used)`` from ``n`` base draws,
        optionally followed by the importance weights' effective sample size (``(Σw)² / Σw²``, in
        ``[1, n]``), which the log-likelihood record then carries
        (:func:`benchbed.blocks.partition.log_partition_from_base` returns all three)."""
        ...


@runtime_checkable
class HasProposal(Protocol):
    """``proposal``: an amortised approximate posterior q(z | x) (an encoder)."""

    def proposal(self, x: torch.Tensor) -> torch.distributions.Distribution:
        """``x`` [B, *D] -> q(z | x) with batch shape [B] and event shape [*Z]: ``sample((k,))``
        gives [k, B, *Z] and ``log_prob`` of that gives [k, B] (normalised, nats)."""
        ...


@runtime_checkable
class HasAnomalyScore(Protocol):
    """``anomaly_score``: the model family's own outlier score."""

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, *D] -> [B], higher = more anomalous (e.g. ``-log p(x, z)`` at the inferred z)."""
        ...


@runtime_checkable
class HasClassify(Protocol):
    """``classify``: class predictions (semi-supervised models)."""

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, *D] -> logits [B, K] over the data set's ``n_classes`` classes."""
        ...


@runtime_checkable
class HasLogLikelihood(Protocol):
    """``log_likelihood``: the exact marginal likelihood."""

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, *D] -> [B]: exact ``log p(x)`` in nats of the data-scale x."""
        ...


CAPABILITY_PROTOCOLS: Mapping[Capability, type] = {
    Capability.SAMPLE: HasSample,
    Capability.INFER: HasInfer,
    Capability.RECONSTRUCT: HasReconstruct,
    Capability.LOG_JOINT: HasLogJoint,
    Capability.LOG_PRIOR: HasLogPrior,
    Capability.LOG_PARTITION: HasLogPartition,
    Capability.PROPOSAL: HasProposal,
    Capability.ANOMALY_SCORE: HasAnomalyScore,
    Capability.CLASSIFY: HasClassify,
    Capability.LOG_LIKELIHOOD: HasLogLikelihood,
}
"""The protocol each capability name stands for (every :class:`Capability` has one)."""


def protocol_methods(protocol: type) -> tuple[str, ...]:
    """The public method names a capability protocol asks for (inherited ones included), sorted."""
    names = {name for klass in protocol.__mro__ if klass not in (Protocol, Generic, object)
             for name, value in vars(klass).items() if callable(value) and not name.startswith("_")}
    return tuple(sorted(names))


def missing_methods(model: object) -> dict[str, list[str]]:
    """Declared capabilities of ``model`` whose methods it lacks: ``{capability: [method, ...]}``.

    Reads ``model.capabilities`` (no setup needed: only attributes are looked up, nothing is
    called) and, for each name that is a :class:`Capability`, the methods of its protocol in
    :data:`CAPABILITY_PROTOCOLS` that are not callable attributes of ``model``.  Unknown names are
    ignored here (they are a separate error).  Empty when the model keeps its declarations.
    """
    out: dict[str, list[str]] = {}
    for name in sorted(set(getattr(model, "capabilities", ()))):
        if name not in _CAPABILITY_NAMES:
            continue
        lacking = [m for m in protocol_methods(CAPABILITY_PROTOCOLS[Capability(name)])
                   if not callable(getattr(model, m, None))]
        if lacking:
            out[str(name)] = lacking
    return out


_CAPABILITY_NAMES = frozenset(c.value for c in Capability)


def protocol_problem(model: object, one_shot: bool) -> str:
    """What :class:`Model` method the runner will call that ``model`` lacks, or '': ``setup``,
    ``checkpoint`` and ``restore`` always, ``train_step`` for a model trained step by step and ``fit``
    for a one-shot one (``ModelSpec.one_shot``).  Looks attributes up only, so a runner can ask it of a
    freshly constructed model and fail before anything trains, instead of after the whole budget
    (``checkpoint`` is first called when the first checkpoint is saved)."""
    needed = ["setup", "fit" if one_shot else "train_step", "checkpoint", "restore"]
    if lacking := [m for m in needed if not callable(getattr(model, m, None))]:
        kind = "a one-shot model (ModelSpec.one_shot)" if one_shot else "a model trained step by step"
        return (f"has no method {', '.join(m + '()' for m in lacking)}, which the runner calls on {kind}; "
                "subclass benchbed.model.LatentModel or write them (benchbed.contracts.Model)")
    return ""


def declaration_problem(model: object) -> str:
    """What is wrong with ``model``'s declared capabilities, or '': names that are not a
    :class:`Capability`, or capabilities whose methods it lacks (:func:`missing_methods`).  Needs no
    setup, so a runner can ask it of a freshly constructed model before anything trains."""
    declared = {str(c) for c in getattr(model, "capabilities", ())}
    if unknown := sorted(declared - _CAPABILITY_NAMES):
        return f"declares unknown capabilities {unknown} (known: {', '.join(sorted(_CAPABILITY_NAMES))})"
    for cap, lacking in missing_methods(model).items():
        return f"declares {cap!r} but has no method {', '.join(m + '()' for m in lacking)}"
    return ""


#: The values of ``DatasetInfo.kind``.
DATA_KINDS = ("image", "vector")


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a loaded data set.

    Attributes:
        name: registered name.
        shape: shape of one example, ``(C, H, W)`` for images or ``(d,)`` for vectors.
        kind: ``"image"`` or ``"vector"``.
        n_classes: number of label classes, 0 when unlabelled.
        has_density: ``DataBundle.log_prob`` gives the exact density of the generating distribution.
        label_names: optional human-readable class names.
    """

    name: str
    shape: tuple[int, ...]
    kind: str
    n_classes: int = 0
    has_density: bool = False
    label_names: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        """Number of scalar coordinates per example (``prod(shape)``)."""
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class Split:
    """One split: ``x`` [N, *D] float32, ``y`` [N] int64 labels or ``None``."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the split's bytes: goes into every result."""
        h = hashlib.sha256()
        h.update(self.x.detach().cpu().contiguous().numpy().tobytes())
        if self.y is not None:
            h.update(self.y.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def subset(self, mask: torch.Tensor) -> Split:
        """The examples where the boolean ``mask`` [N] is true."""
        return Split(self.x[mask], None if self.y is None else self.y[mask])


@dataclass(frozen=True)
class DataBundle:
    """A loaded data set: three splits, metadata, and the exact density where one is known.

    Attributes:
        log_prob: ``x [B, *D] -> [B]`` exact log density (nats) of the generating distribution,
            for synthetic data; ``None`` otherwise.
        held_out: classes removed from train/val by :meth:`hold_out` (outlier protocol); empty for
            the normal data set.
    """

    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    held_out: tuple[int, ...] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What breaks the data-set contract, one line each (empty when none): ``info.kind`` not
        "image"/"vector", an empty split, ``x`` not float32 or not shaped ``[N, *info.shape]``,
        non-finite values, images outside [0, 1], labels missing, not int64, not one per example or
        outside ``0..n_classes-1``.  Cheap (one pass over the data), so every load is checked."""
        info, out = self.info, []
        if info.kind not in DATA_KINDS:
            out.append(f"info.kind {info.kind!r} is not one of {', '.join(repr(k) for k in DATA_KINDS)}")
        for name in ("train", "val", "test"):
            split = getattr(self, name)
            x, y = split.x, split.y
            if not isinstance(x, torch.Tensor):
                out.append(f"{name}.x is a {type(x).__name__}, not a torch.Tensor")
                continue
            if len(x) == 0:
                out.append(f"the {name} split is empty")
            if x.dtype != torch.float32:
                out.append(f"{name}.x has dtype {x.dtype}, not torch.float32")
            if tuple(x.shape[1:]) != tuple(info.shape):
                out.append(f"{name}.x has shape {tuple(x.shape)}, not [N, *info.shape] = [N, "
                           f"{', '.join(map(str, info.shape))}]")
            if x.is_floating_point() and x.numel():
                finite = torch.isfinite(x)
                if not bool(finite.all()):
                    out.append(f"{name}.x holds {int((~finite).sum())} non-finite values (NaN or inf)")
                elif info.kind == "image" and (float(x.min()) < 0 or float(x.max()) > 1):
                    out.append(f"{name}.x: image values in [{float(x.min()):g}, {float(x.max()):g}], not in [0, 1]")
            if info.n_classes:
                if y is None:
                    out.append(f"{name}.y is missing but info.n_classes = {info.n_classes}")
                elif y.dtype != torch.int64 or y.shape != (len(x),):
                    out.append(f"{name}.y must be int64 of shape [{len(x)}], got {y.dtype} {tuple(y.shape)}")
                elif y.numel() and (int(y.min()) < 0 or int(y.max()) >= info.n_classes):
                    out.append(f"{name}.y has labels in [{int(y.min())}, {int(y.max())}], outside "
                               f"0..{info.n_classes - 1}")
        return out

    def content_hash(self) -> str:
        """Hash of all three splits together (and of the held-out classes)."""
        parts = [self.train.content_hash(), self.val.content_hash(), self.test.content_hash()]
        parts.append(",".join(map(str, self.held_out)))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def hold_out(self, classes: tuple[int, ...]) -> DataBundle:
        """The outlier variant of a data set: train and val without ``classes``; test unchanged.

        Raises:
            ValueError: the data set has no labels, or a class is out of range.
        """
        if self.train.y is None or self.info.n_classes == 0:
            raise ValueError(f"data set {self.info.name!r} has no labels: no class can be held out")
        bad = [c for c in classes if not 0 <= c < self.info.n_classes]
        if bad:
            raise ValueError(
                f"data set {self.info.name!r}: held-out classes {bad} outside 0..{self.info.n_classes - 1}"
            )
        keep = torch.tensor(list(classes), dtype=torch.long)
        masks = {name: ~torch.isin(getattr(self, name).y, keep) for name in ("train", "val")}

        def per_split(value: Any) -> Any:
            """Per-split extras (``{"train": T, "val": T, "test": T}``) follow the split they describe."""
            if not isinstance(value, Mapping) or not {"train", "val"} <= set(value):
                return value
            out = dict(value)
            for name, mask in masks.items():
                if hasattr(out[name], "__getitem__") and len(out[name]) == len(mask):
                    out[name] = out[name][mask]
            return out

        return replace(self, train=self.train.subset(masks["train"]), val=self.val.subset(masks["val"]),
                       held_out=tuple(classes), extras={k: per_split(v) for k, v in self.extras.items()})

    def outlier_mask(self) -> torch.Tensor:
        """Boolean [N_test]: test examples of the held-out classes (the positive, anomalous class)."""
        if self.test.y is None or not self.held_out:
            raise ValueError(f"data set {self.info.name!r} has no held-out classes")
        return torch.isin(self.test.y, torch.tensor(list(self.held_out), dtype=torch.long))


@runtime_checkable
class DatasetSource(Protocol):
    """What a dataset factory returns: keyword parameters stored, no work until ``load``."""

    def load(self, *, seed: int) -> DataBundle:
        """Build or read the data; splits must be deterministic given ``seed``."""
        ...


@runtime_checkable
class Downloadable(Protocol):
    """Optional for data sets and metrics: files fetched from the network before first use.

    ``benchbed download NAME`` (:func:`benchbed.downloads.download`) builds the component with its
    defaults and calls ``download``; a component without this method has nothing to download.
    """

    def download(self, root: str | None = None) -> list[Path]:
        """Fetch the missing files (checksum-verified); return the paths of all of them.

        ``root`` is the data root for data files (``None``: the component's own default); files
        kept elsewhere by convention (weights in the torch hub cache) ignore it.  Raises
        :class:`benchbed.errors.DataError` naming each file and where it belongs when it cannot
        (offline, no network, corrupt download).
        """
        ...


@dataclass(frozen=True)
class SampleResult:
    """Output of a sampler: samples ``z`` (same shape as ``z0``, detached) and diagnostics.

    ``diagnostics`` holds at least ``steps``, ``step_size`` and ``final_log_density`` (mean over
    chains); ``acceptance_rate`` where the sampler has one.
    """

    z: torch.Tensor
    diagnostics: dict[str, float]


LogDensity = Callable[[torch.Tensor], torch.Tensor]
"""A latent log-density: ``z [B, *Z] -> [B]`` (unnormalised is fine)."""


@runtime_checkable
class GradLogDensity(Protocol):
    """Optional fast path of a :data:`LogDensity`: its gradient without an autograd tape.

    A model whose log-density has a cheaper gradient than autograd's (hand-written VJPs of a small
    MLP, say) returns an object with both methods.  ``__call__`` must stay differentiable with
    autograd, because samplers that differentiate through their own dynamics (``short_run``'s
    step-size learning) or third-party samplers use only that.  Samplers that need just values and
    gradients may call ``value_and_grad`` instead.  Both must describe the same function.
    """

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)``: [B, *Z] -> [B]."""
        ...

    def value_and_grad(self, z: torch.Tensor, *, value: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(log p(z) [B] or None when value=False, grad_z log p(z) [B, *Z])``, both detached.

        Must not modify ``z``, and must not return a tensor that aliases ``z`` or a parameter
        (callers update their states in place).
        """
        ...


@runtime_checkable
class Sampler(Protocol):
    """A latent sampler.  May be an ``nn.Module`` when it has learned parameters (``short_run``)."""

    def sample(self, log_density: LogDensity, z0: torch.Tensor, **kwargs: Any) -> SampleResult:
        """Run the dynamics from ``z0`` [B, *Z] on ``log_density``; must work under no_grad."""
        ...


class SamplerProvider(Protocol):
    """Given to a model in :class:`SetupContext`: builds the sampler for one role.

    ``defaults`` are the model's own settings for that role (e.g. LEBM prior: n_steps=60,
    step_size=0.4); the suite's sampler parameters override them, and the suite's per-role table
    overrides both.
    """

    @property
    def name(self) -> str:
        """The sampler's registered name (read-only)."""
        ...

    def __call__(self, role: str, **defaults: Any) -> Sampler: ...


@dataclass(frozen=True)
class Budget:
    """Training budget of one cell: optimisation steps and minibatch size."""

    steps: int
    batch_size: int


@dataclass(frozen=True)
class Batch:
    """A training minibatch: ``x`` [B, *D], ``y`` [B] or ``None``, ``index`` [B] rows of the train split
    (for per-example state such as ABP's persistent chains)."""

    x: torch.Tensor
    y: torch.Tensor | None
    index: torch.Tensor


@dataclass(frozen=True)
class EngineOptions:
    """How a run computes, never what: options of ``benchbed run``, not model hyperparameters.

    They do not enter run ids or tables.  A model must produce the same numbers whatever they are
    (one code path; e.g. concurrent chains draw their noise from per-chain generators seeded from the
    global RNG whether or not they actually run side by side).

    Attributes:
        fused: use hand-written value-and-gradient paths where a model has them (same values and
            gradients, fewer operations); ``None`` = automatic (on).
        concurrent_chains: run independent chain sets of one step side by side in threads when it pays
            (CPU, >= 2 intra-op threads, small dense networks); ``None`` = automatic.
        threads: intra-op threads of the process running the cell; ``None`` = torch's default.
    """

    fused: bool | None = None
    concurrent_chains: bool | None = None
    threads: int | None = None


@dataclass(frozen=True)
class SetupContext:
    """Everything a model may use to build itself.

    Attributes:
        train: the training split (for models that precompute on it; most use batches only).
        engine: how to compute (:class:`EngineOptions`); never changes the numbers.
    """

    info: DatasetInfo
    train: Split
    budget: Budget
    device: torch.device
    seed: int
    sampler: SamplerProvider | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)


class Model(Protocol):
    """A latent-variable model.  See :class:`benchbed.model.LatentModel` for a base class."""

    capabilities: frozenset[str]

    def setup(self, ctx: SetupContext) -> None:
        """Build networks and optimisers for the data in ``ctx``."""
        ...

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:
        """One optimisation step; returns named losses (any non-finite value means divergence)."""
        ...

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue training (networks, optimisers, persistent chains)."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`checkpoint`, called after ``setup``."""
        ...

    def n_parameters(self) -> int:
        """Number of trainable parameters (a leaderboard cost column)."""
        ...

    # Optional: ``resolved_settings() -> dict`` of settings derived from the data in ``setup`` (kernel
    # scales, phase lengths); the runner stores them with the result's provenance.


@dataclass(frozen=True)
class MetricResult:
    """A metric's value, the settings that produced it, and per-item details.

    Attributes:
        value: the number in the table.
        settings: what produced the value and nothing else: estimator name, sample counts, feature
            extractor and weights hash, reference split...  Stored with the record; when empty the
            runner records the metric entry's parameters instead.  A ``"warning"`` key (text) says
            the value is unreliable (e.g. an importance-sampling estimate resting on too few
            effective draws): tables footnote the cell with it and never mark it best.
        details: extra values kept in the store (e.g. each held-out class's AUROC).
        estimator: short tag of *what* the value is, e.g. ``"IWAE lb"`` or ``"energy"``.  Tables
            show it wherever a column is not uniform, and never rank values with different tags
            against each other unless the metric's spec says they are comparable
            (:attr:`benchbed.specs.MetricSpec.ranks_across_estimators`).  Empty: one kind only.
        stderr: standard error of ``value`` within this run (e.g. over test examples), or ``None``.
        per_example: the per-example values ``value`` aggregates ([N], e.g. log-likelihoods or
            anomaly scores); stored, and read back with :meth:`benchbed.store.Store.per_example`.
    """

    value: float
    settings: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    estimator: str = ""
    stderr: float | None = None
    per_example: Sequence[float] | torch.Tensor | None = None


@dataclass(frozen=True)
class ReferenceRow:
    """A reference row for a leaderboard: e.g. the true test log-likelihood of a synthetic data set,
    or logistic regression's accuracy.  ``label`` becomes the row name."""

    label: str
    result: MetricResult


@dataclass
class EvalContext:
    """What a metric sees.

    Attributes:
        model: the trained model of this cell.  It offers every capability the metric's spec
            requires (for :class:`benchbed.specs.AnyOf`, at least one alternative); narrow it with
            ``isinstance(ctx.model, HasSample)`` etc. to call capability methods with types.
        data: its data bundle.
        train_variant: ``bundle -> trained model``: trains a fresh copy of this cell's model (same
            parameters, budget, sampler and seed) on a variant such as ``data.hold_out((c,))``.
            The runner caches the result, so two outlier metrics share the trainings.
        cache: per-cell scratch space shared by the metrics of one cell.
    """

    model: Model
    data: DataBundle
    device: torch.device
    seed: int
    train_variant: Callable[[DataBundle], Model]
    cache: dict[str, Any] = field(default_factory=dict)


class Metric(Protocol):
    """An evaluation metric: keyword settings stored by the constructor, work in ``evaluate``.

    A metric may also define ``references(data: DataBundle[, seed: int]) -> list[ReferenceRow]``:
    model-free rows (the true log-likelihood of synthetic data, a logistic-regression baseline) that
    the runner stores once per (data set, seed) and the leaderboard shows beside the models; the
    cell seed is passed when the method takes a ``seed`` keyword.
    """

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        """Compute the metric; raise :class:`benchbed.errors.NotApplicable` to mark the cell n/a."""
        ...
