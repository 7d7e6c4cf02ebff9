"""Tiny in-process components for testing the core without the heavy built-in plugins.

Everything here registers through ``benchbed.plugins.load_plugins(extra=[("fake", FakePlugin())])``,
i.e. the same registration path a third-party plugin uses.  The data set is 64 points on a noisy
line in 2-D, so a 1-D linear autoencoder (``linear``) learns it in a few dozen Adam steps.

The classes are module-level and this module has no ``from __future__ import annotations``, so the
factories' annotations are real types and the suite checks see them.
"""

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import pytest
import torch
from torch import nn

from benchbed import DatasetSpec, MetricSpec, ModelSpec, SamplerSpec, hookimpl
from benchbed.contracts import (
    Batch,
    DataBundle,
    DatasetInfo,
    EvalContext,
    MetricResult,
    ReferenceRow,
    SampleResult,
    SetupContext,
    Split,
)
from benchbed.errors import NotApplicable
from benchbed.execute import RunSummary, run_suite
from benchbed.model import LatentModel
from benchbed.plugins import PluginSet, load_plugins
from benchbed.registry import Registry
from benchbed.runner import RunOptions
from benchbed.store import Store
from benchbed.suite import Suite, load_suite

# ------------------------------------------------------------------------------------------------
# data


class ToyData:
    """Points ``t * (0.8, 0.6) + noise`` with ``t ~ N(0, 1)``: train 64, val 16, test 32.

    Args:
        n_train: training points.
        kind: ``"vector"`` (shape (2,)) or ``"image"`` (shape (1, 1, 2), squashed into [0, 1]).
        labels: labels ``t > 0`` (2 classes) or none.
    """

    def __init__(self, *, n_train: int = 64, kind: str = "vector", labels: bool = False) -> None:
        self.n_train = n_train
        self.kind = kind
        self.labels = labels

    def load(self, *, seed: int) -> DataBundle:
        g = torch.Generator().manual_seed(seed)

        def split(n: int) -> Split:
            t = torch.randn(n, 1, generator=g)
            x = t @ torch.tensor([[0.8, 0.6]]) + 0.05 * torch.randn(n, 2, generator=g)
            if self.kind == "image":
                x = torch.sigmoid(x).view(n, 1, 1, 2)
            return Split(x.float(), (t[:, 0] > 0).long() if self.labels else None)

        shape = (1, 1, 2) if self.kind == "image" else (2,)
        info = DatasetInfo(name="toy", shape=shape, kind=self.kind, n_classes=2 if self.labels else 0)
        return DataBundle(info=info, train=split(self.n_train), val=split(16), test=split(32))


# ------------------------------------------------------------------------------------------------
# models


class LinearAE(LatentModel):
    """A linear autoencoder ``dec(enc(x + noise))`` trained by Adam; knobs to make it misbehave.

    ``noise`` draws from the global torch RNG in every step, so resuming from a checkpoint only
    reproduces an uninterrupted run if the runner restores the RNG state too.
    """

    capabilities = frozenset({"infer", "reconstruct", "sample"})
    setups = 0  # how many models were set up in this process (counts trainings of variants)

    def __init__(
        self,
        *,
        latent_dim: int = 1,
        lr: float = 0.05,
        noise: float = 0.1,
        hidden: tuple[int, ...] = (4,),
        scale: float | None = None,
        mode: Literal["plain", "fancy"] = "plain",
        fail_at: int = -1,
        fail_seed: int = -1,
        nan_at: int = -1,
        flag_file: str = "",
        flag_at: int = -1,
        flag_action: str = "interrupt",
        sample_fails: bool = False,
    ) -> None:
        super().__init__()
        self.sample_fails = sample_fails
        self.latent_dim = latent_dim
        self.lr = lr
        self.noise = noise
        self.hidden = hidden
        self.scale = scale
        self.mode = mode
        self.fail_at = fail_at
        self.fail_seed = fail_seed
        self.nan_at = nan_at
        self.flag_file = flag_file
        self.flag_at = flag_at
        self.flag_action = flag_action

    def setup(self, ctx: SetupContext) -> None:
        LinearAE.setups += 1
        self.shape = ctx.info.shape
        self.seed = ctx.seed
        self.enc = nn.Linear(ctx.info.dim, self.latent_dim)
        self.dec = nn.Linear(self.latent_dim, ctx.info.dim)
        self.optimizers = {"adam": torch.optim.Adam(self.parameters(), lr=self.lr)}

    def _flag(self, step: int) -> None:
        """Act once when the flag file exists at ``flag_at`` (the file is removed first)."""
        if self.flag_file and step == self.flag_at and os.path.exists(self.flag_file):
            os.remove(self.flag_file)
            if self.flag_action == "interrupt":
                raise KeyboardInterrupt
            raise RuntimeError(f"flagged failure at step {step}")

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        if step == self.fail_at and self.fail_seed in (-1, self.seed):
            raise RuntimeError(f"fake failure at step {step}")
        self._flag(step)
        x = batch.x.flatten(1)
        noisy = x + self.noise * torch.randn_like(x)
        loss = (self.dec(self.enc(noisy)) - x).pow(2).mean()
        opt = self.optimizers["adam"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float("nan") if step == self.nan_at else loss.item()}

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x.flatten(1))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.infer(x)).view(x.shape)

    def sample(self, n: int) -> torch.Tensor:
        if self.sample_fails:
            raise RuntimeError("fake sampling failure")
        return self.dec(torch.randn(n, self.latent_dim, device=self.dec.weight.device)).view(n, *self.shape)


class DynAE(LinearAE):
    """A linear AE whose ``infer`` refines the encoder's code with the suite's sampler (role posterior)."""

    def setup(self, ctx: SetupContext) -> None:
        super().setup(ctx)
        assert ctx.sampler is not None, "a model with uses_sampler=True gets a sampler provider"
        self.posterior = ctx.sampler("posterior", n_steps=3, step_size=0.05, target_accept=0.6)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)

        def log_density(z: torch.Tensor) -> torch.Tensor:
            return -((self.dec(z) - x) ** 2).sum(1) - 0.5 * (z**2).sum(1)

        return self.posterior.sample(log_density, self.enc(x)).z


# ------------------------------------------------------------------------------------------------
# sampler


class GradientWalk:
    """Gradient ascent on the log-density with an optional Gaussian jitter (deterministic when 0)."""

    def __init__(self, *, n_steps: int = 5, step_size: float = 0.1, jitter: float = 0.0) -> None:
        self.n_steps = n_steps
        self.step_size = step_size
        self.jitter = jitter

    def sample(self, log_density: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor) -> SampleResult:
        # Metrics call us under no_grad or inference_mode: switch both off for z itself.
        with torch.inference_mode(False), torch.enable_grad():
            z = z0.detach().clone()
            for _ in range(self.n_steps):
                z = z.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(log_density(z).sum(), z)
                z = z + self.step_size * grad + self.jitter * torch.randn_like(z)
        z = z.detach()
        return SampleResult(z, {"steps": float(self.n_steps), "step_size": self.step_size,
                                "final_log_density": float(log_density(z).mean())})


# ------------------------------------------------------------------------------------------------
# metrics


class FakeMSE:
    """Mean squared reconstruction error on a split."""

    def __init__(self, *, split: str = "test") -> None:
        self.split = split

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        x = getattr(ctx.data, self.split).x.to(ctx.device)
        per_example = (ctx.model.reconstruct(x) - x).pow(2).flatten(1).mean(1)
        return MetricResult(float(per_example.mean()), settings={"split": self.split, "n_examples": len(x)},
                            per_example=per_example)


class NonFinite:
    """Returns a non-finite value (inf): stored as a failure, never as ``ok``."""

    def __init__(self, *, value: float = float("inf")) -> None:
        self.value = value

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        return MetricResult(self.value)


class NotANumber(NonFinite):
    """Returns NaN (its default: a suite may not set NaN where the default is finite)."""

    def __init__(self, *, value: float = float("nan")) -> None:
        super().__init__(value=value)


class NeverEvaluated:
    """A metric the compatibility matrix must keep from running (its evaluate would fail the test)."""

    def __init__(self, *, k: int = 1) -> None:
        self.k = k

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        raise AssertionError("evaluate() of a metric that the compatibility matrix rules out was called")


class ImageMean:
    """Mean pixel of the test images (applies to image data only)."""

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        assert ctx.data.info.kind == "image"
        return MetricResult(float(ctx.data.test.x.mean()))


class HeldOutMSE:
    """Outlier-protocol stand-in: trains a variant without class ``held_out`` via ``ctx.train_variant``
    and reports its reconstruction error on a random half of the test split (drawn after the
    variant is trained, so the value depends on the RNG state the metric sees)."""

    def __init__(self, *, held_out: int = 0) -> None:
        self.held_out = held_out

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        variant = ctx.data.hold_out((self.held_out,))
        model = ctx.train_variant(variant)
        assert model is ctx.train_variant(variant), "train_variant must cache per variant"
        assert model is not ctx.model
        x = ctx.data.test.x.to(ctx.device)
        x = x[torch.randperm(len(x))[: len(x) // 2]]
        return MetricResult(float((model.reconstruct(x) - x).pow(2).mean()), settings={"held_out": self.held_out})


class LabelMean:
    """Fraction of positive labels in the test split (applies to labelled data only)."""

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        assert ctx.data.test.y is not None
        return MetricResult(float(ctx.data.test.y.float().mean()))


class MissingWeights:
    """Raises NotApplicable at evaluation time, like FID without local weights."""

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        raise NotApplicable("fake weights not found: set FAKE_WEIGHTS=/path/to/weights.pt")


class Boom:
    """Raises an ordinary exception: the metric row is failed, the cell's other metrics stay."""

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        raise ValueError("metric exploded")


class WithReference:
    """Mean of the first sample coordinate, with a model-free reference row ``oracle``."""

    def __init__(self, *, offset: float = 0.0) -> None:
        self.offset = offset

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        return MetricResult(float(ctx.model.sample(32)[:, 0].mean()) + self.offset)

    def references(self, data: DataBundle) -> list[ReferenceRow]:
        value = float(data.test.x.flatten(1)[:, 0].mean()) + self.offset
        return [ReferenceRow("oracle", MetricResult(value, settings={"estimator": "exact"}))]


class WithReferenceTuple(WithReference):
    """The same with a tuple-typed parameter, like the built-in metrics' ``classes`` or ``parzen_bandwidths``."""

    def __init__(self, *, classes: tuple[int, ...] = (0,), offset: float = 0.0) -> None:
        super().__init__(offset=offset)
        self.classes = classes


# ------------------------------------------------------------------------------------------------
# the plugin


class FakePlugin:
    """Registers every fake component through the four hooks."""

    @hookimpl
    def benchbed_register_datasets(self, register: Callable[[DatasetSpec], None]) -> None:
        register(DatasetSpec(name="toy", factory=ToyData, description="64 points on a noisy line"))

    @hookimpl
    def benchbed_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        register(ModelSpec(name="linear", factory=LinearAE, description="linear autoencoder"))
        register(ModelSpec(name="dyn", factory=DynAE, description="linear AE with sampler-refined codes",
                           uses_sampler=True, default_sampler="walk", samplers=("walk",)))
        register(ModelSpec(name="dyn_any", factory=DynAE, description="the same, with any sampler",
                           uses_sampler=True, default_sampler="walk"))

    @hookimpl
    def benchbed_register_samplers(self, register: Callable[[SamplerSpec], None]) -> None:
        register(SamplerSpec(name="walk", factory=GradientWalk, description="gradient ascent"))
        register(SamplerSpec(name="other_walk", factory=GradientWalk, description="a sampler dyn does not accept"))

    @hookimpl
    def benchbed_register_metrics(self, register: Callable[[MetricSpec], None]) -> None:
        register(MetricSpec(name="fake_mse", factory=FakeMSE, higher_is_better=False, label="MSE",
                            requires=frozenset({"reconstruct"})))
        register(MetricSpec(name="fake_ll", factory=NeverEvaluated, higher_is_better=True,
                            requires=frozenset({"log_likelihood"})))
        register(MetricSpec(name="fake_img", factory=ImageMean, higher_is_better=False,
                            data_kinds=frozenset({"image"})))
        register(MetricSpec(name="fake_labels", factory=LabelMean, higher_is_better=True, needs_labels=True))
        register(MetricSpec(name="fake_na", factory=MissingWeights, higher_is_better=False))
        register(MetricSpec(name="fake_boom", factory=Boom, higher_is_better=False))
        register(MetricSpec(name="fake_inf", factory=NonFinite, higher_is_better=True))
        register(MetricSpec(name="fake_nan", factory=NotANumber, higher_is_better=True))
        register(MetricSpec(name="fake_ref", factory=WithReference, higher_is_better=True))
        register(MetricSpec(name="fake_ref_t", factory=WithReferenceTuple, higher_is_better=True))
        register(MetricSpec(name="fake_outlier", factory=HeldOutMSE, higher_is_better=False, needs_labels=True))
        # Never evaluated: tests write their records into a store directly (tagged values).
        register(MetricSpec(name="fake_est", factory=NeverEvaluated, higher_is_better=True,
                            estimators={"Parzen": "kernel density", "IWAE lb": "a lower bound"}))
        register(MetricSpec(name="fake_score", factory=NeverEvaluated, higher_is_better=True,
                            estimators={"model score": "own score", "NLL IWAE": "-log p"},
                            ranks_across_estimators=True))


def fake_plugin_set(**kwargs) -> PluginSet:
    """Only the fake plugin, strict, no entry points."""
    kwargs.setdefault("strict", True)
    return load_plugins(extra=[("fake", FakePlugin())], entry_points_enabled=False, **kwargs)


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def fake_registry() -> Registry:
    return fake_plugin_set().registry


@pytest.fixture(autouse=True)
def _no_plugin_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filtering switches are tested explicitly; a developer's shell must not change other tests.
    ``BENCHBED_STRICT_PLUGINS`` is left alone (tox sets it); tests that depend on it pass ``strict``."""
    for var in ("BENCHBED_DISABLE_PLUGINS", "BENCHBED_LOAD_PLUGINS", "BENCHBED_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


HEADER = """\
name = "t"
seeds = [0]
[budget]
steps = 24
batch_size = 16
[datasets.toy]
"""


def suite_text(body: str, header: str = HEADER) -> str:
    return header + textwrap.dedent(body)


@pytest.fixture
def make_suite(tmp_path: Path, fake_registry: Registry) -> Callable[..., Suite]:
    """``make_suite(body, header=HEADER, name="suite.toml")`` writes a suite file and loads it."""

    def make(body: str, header: str = HEADER, name: str = "suite.toml", registry: Registry | None = None) -> Suite:
        path = tmp_path / name
        path.write_text(suite_text(body, header))
        return load_suite(path, registry or fake_registry)

    return make


@pytest.fixture
def runner(tmp_path: Path, fake_registry: Registry) -> Callable[..., tuple[RunSummary, Store]]:
    """``runner(suite, store_dir="a", **options)`` runs a suite with the fake registry (no bars)."""
    stores: dict[str, Store] = {}

    def run(suite: Suite, store_dir: str = "store", registry: Registry | None = None,
            **options) -> tuple[RunSummary, Store]:
        if store_dir not in stores:
            stores[store_dir] = Store(tmp_path / store_dir / "results.sqlite")
        store = stores[store_dir]
        summary = run_suite(suite, registry or fake_registry, store, options=RunOptions(bars=False, **options))
        return summary, store

    yield run
    for store in stores.values():
        store.close()


def model_runs(store: Store) -> list[dict]:
    """Every model run in the store, decoded, in start order."""
    ids = list(dict.fromkeys(r["run_id"] for r in store.frame() if r["kind"] == "model"))
    return [store.run(i) for i in ids]


def claim_identity(seed: int = 0) -> dict:
    """The identity columns of a claimed cell, for store tests."""
    return {"suite": "s", "model": "m", "model_component": "linear", "sampler": "", "dataset": "toy", "seed": seed,
            "config": {"seed": seed}}


def set_columns(store: Store, run_id: str, **cols: object) -> None:
    """Overwrite columns of a stored run (to fake an old heartbeat, another host, a dead pid ...)."""
    with store.transaction() as db:
        db.execute(f"UPDATE runs SET {', '.join(f'{k}=?' for k in cols)} WHERE run_id=?", (*cols.values(), run_id))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store in the test's folder."""
    s = Store(tmp_path / "results.sqlite")
    yield s
    s.close()


@pytest.fixture
def helpers() -> SimpleNamespace:
    """Module-level helpers for the test files (conftest is not importable under importlib mode)."""
    return SimpleNamespace(identity=claim_identity, set_columns=set_columns,
                           model_runs=model_runs, suite_text=suite_text, fake_plugin_set=fake_plugin_set,
                           FakePlugin=FakePlugin, LinearAE=LinearAE, ToyData=ToyData, FakeMSE=FakeMSE, HEADER=HEADER)


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Installs a real third-party distribution on ``sys.path``: a ``*.dist-info`` with entry points in
    the ``benchbed`` group plus its modules, so ``importlib.metadata`` finds it like a pip install."""

    installed: list[str] = []

    def install(modules: dict[str, str], entry_points: dict[str, str], dist: str = "bbthird",
                version: str = "1.2.3") -> Path:
        root = tmp_path / "site"
        info = root / f"{dist}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        eps = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[benchbed]\n{eps}\n")
        for mod, code in modules.items():
            (root / f"{mod}.py").write_text(textwrap.dedent(code))
            sys.modules.pop(mod, None)
            installed.append(mod)
        monkeypatch.syspath_prepend(str(root))
        return root

    yield install
    for mod in installed:
        sys.modules.pop(mod, None)
