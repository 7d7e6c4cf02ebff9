"""Contracts between the four kinds of component (DESIGN §3).

* A **dataset** source loads a :class:`DataBundle`: deterministic train/val/test splits in a fixed
  scale (images: float in [0, 1], channels first), labels where it has them, and :class:`DatasetInfo`.
* A **model** is built with keyword hyperparameters (no work), then ``setup(ctx)`` builds its
  networks, ``train_step(batch)`` is called ``budget.steps`` times by the runner, and the trained
  model offers the capabilities it declares in ``capabilities``.
* A **sampler** acts on any latent log-density: ``sample(log_density, z0)`` returns samples plus
  diagnostics.  It enables gradients for ``z`` itself, so it works under ``torch.no_grad()``.
* A **metric** declares what it needs on its spec and computes a :class:`MetricResult` from an
  :class:`EvalContext`.

Shapes: ``B`` = batch, ``D`` = data dims (``(C, H, W)`` images or ``(d,)`` vectors), ``Z`` = latent dims.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import torch


class Capability(StrEnum):
    """What a trained model can do.  A model lists the ones it offers in ``model.capabilities``."""

    SAMPLE = "sample"  # sample(n) -> Tensor[n, *D]
    INFER = "infer"  # infer(x[B, *D]) -> z[B, *Z]
    RECONSTRUCT = "reconstruct"  # reconstruct(x[B, *D]) -> x_hat[B, *D]
    # log_joint(x, z) -> [B]: log p(x|z) + log_prior(z), with log p(x|z) normalised in x (nats), so
    # log_joint - log_prior is the decoder likelihood; the prior's log Z is left out.
    LOG_JOINT = "log_joint"
    # log_prior(z) -> [B], possibly unnormalised; a model declaring it also has sample_prior_base(n)
    # -> z [n, *Z]: exact prior draws when the model has no log_partition, else draws of the base p0.
    LOG_PRIOR = "log_prior"
    # log_partition(n) -> (estimate of log ∫ exp(log_prior(z)) dz, n samples used); EBM priors only.
    LOG_PARTITION = "log_partition"
    PROPOSAL = "proposal"  # proposal(x) -> torch.distributions.Distribution over z, batch shape [B]
    ANOMALY_SCORE = "anomaly_score"  # anomaly_score(x) -> [B], higher = more anomalous
    CLASSIFY = "classify"  # classify(x) -> logits [B, K]
    LOG_LIKELIHOOD = "log_likelihood"  # log_likelihood(x) -> [B], exact log p(x) in nats


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

    def content_hash(self) -> str:
        """Hash of all three splits together (and of the held-out classes)."""
        parts = [self.train.content_hash(), self.val.content_hash(), self.test.content_hash()]
        parts.append(",".join(map(str, self.held_out)))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def hold_out(self, classes: tuple[int, ...]) -> DataBundle:
        """The outlier variant of DESIGN §5: train and val without ``classes``; test unchanged.

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

    name: str

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
            runner records the metric entry's parameters instead.
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
        model: the trained model of this cell.
        data: its data bundle.
        train_variant: ``bundle -> trained model``: trains a fresh copy of this cell's model (same
            parameters, budget, sampler and seed) on a variant such as ``data.hold_out((c,))``.
            The runner caches the result, so two outlier metrics share the trainings.
        cache: per-cell scratch space shared by the metrics of one cell.
    """

    model: Any
    data: DataBundle
    device: torch.device
    seed: int
    train_variant: Callable[[DataBundle], Any]
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
