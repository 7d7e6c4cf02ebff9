"""FD-domain and FD-raw (``docs/architecture.md#metric-definitions``): the Fréchet distance of FID on other features.

* ``fd_domain`` (images): features of a small network benchbed trains on the data set's training split
  (a classifier when the data set has labels, an autoencoder's code otherwise; see
  :mod:`benchbed_metrics.domain_features`).  Distances are comparable only for the same extractor,
  whose weights hash is recorded.
* ``fd_raw`` (vectors): the raw coordinates are the features.

Both compare model samples with the test split.  Neither is FID and neither is labelled so.
"""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge, Gt

from benchbed.contracts import EvalContext, MetricResult
from benchbed.errors import NotApplicable
from benchbed_metrics._batching import draw_samples, head, split_of
from benchbed_metrics.domain_features import DomainExtractor, ExtractorConfig, load_or_train
from benchbed_metrics.frechet import feature_stats, frechet_distance


def domain_extractor(ctx: EvalContext, cfg: ExtractorConfig) -> DomainExtractor:
    """The extractor for this cell's data (per-cell memo on top of the on-disk cache)."""
    key = f"fd_domain_extractor:{cfg}"
    if key not in ctx.cache:
        ctx.cache[key] = load_or_train(ctx.data.info, ctx.data.train, ctx.data.test, cfg, device=ctx.device)
    return ctx.cache[key]


class FDDomain:
    """Fréchet distance on features of a benchbed-trained network, samples vs the test split.

    Args:
        n_samples: generated images.
        n_reference: reference images (``None`` = the whole split).
        split: reference split.
        extractor: "auto" (classifier when labelled, else autoencoder), "classifier" or "autoencoder".
        width, feature_dim, steps, batch_size, lr, seed: the extractor's architecture and training.
    """

    def __init__(
        self,
        *,
        n_samples: Annotated[int, Ge(2)] = 5000,
        n_reference: Annotated[int | None, Ge(2)] = None,
        split: str = "test",
        extractor: Literal["auto", "classifier", "autoencoder"] = "auto",
        width: Annotated[int, Gt(0)] = 16,
        feature_dim: Annotated[int, Gt(0)] = 64,
        steps: Annotated[int, Ge(0)] = 1000,
        batch_size: Annotated[int, Gt(0)] = 128,
        lr: Annotated[float, Gt(0)] = 1e-3,
        seed: int = 0,
    ) -> None:
        self.n_samples = n_samples
        self.n_reference = n_reference
        self.split = split
        self.extractor = extractor
        self.width, self.feature_dim, self.steps = width, feature_dim, steps
        self.batch_size, self.lr, self.seed = batch_size, lr, seed

    def config(self, ctx: EvalContext) -> ExtractorConfig:
        labelled = ctx.data.info.n_classes > 0 and ctx.data.train.y is not None
        kind = self.extractor if self.extractor != "auto" else ("classifier" if labelled else "autoencoder")
        if kind == "classifier" and not labelled:
            raise NotApplicable(f"fd_domain: data set {ctx.data.info.name!r} has no labels for a classifier; "
                                "use extractor='autoencoder' (or 'auto')")
        return ExtractorConfig(kind=kind, width=self.width, feature_dim=self.feature_dim, steps=self.steps,
                               batch_size=self.batch_size, lr=self.lr, seed=self.seed)

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        ext = domain_extractor(ctx, self.config(ctx))
        ref = head(split_of(ctx.data, self.split), self.n_reference)
        ref_key = f"fd_domain_ref:{ext.sha256}:{ref.content_hash()}:{len(ref)}"
        if ref_key not in ctx.cache:
            ctx.cache[ref_key] = feature_stats(ext.features(ref.x, device=ctx.device))
        samples = draw_samples(ctx.model, self.n_samples, batch_size=500).clamp(0.0, 1.0)
        gen = feature_stats(ext.features(samples, device=ctx.device))
        return MetricResult(
            value=frechet_distance(gen, ctx.cache[ref_key]),
            settings={
                "feature_extractor": f"benchbed small CNN {ext.config.kind} ({ext.config.feature_dim} features)",
                "extractor_config": {k: v for k, v in vars(ext.config).items()},
                "weights_sha256": ext.sha256,
                "extractor_train_split_hash": ext.train_hash,
                "extractor_test_accuracy": ext.test_accuracy,
                "n_samples": gen.n,
                "n_reference": ctx.cache[ref_key].n,
                "reference_split": self.split,
            },
            details={"reference_split_hash": ref.content_hash()},
        )


class FDRaw:
    """Fréchet distance on raw coordinates (vector data), samples vs the test split."""

    def __init__(
        self,
        *,
        n_samples: Annotated[int, Ge(2)] = 5000,
        n_reference: Annotated[int | None, Ge(2)] = None,
        split: str = "test",
    ) -> None:
        self.n_samples = n_samples
        self.n_reference = n_reference
        self.split = split

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        ref = head(split_of(ctx.data, self.split), self.n_reference)
        samples = draw_samples(ctx.model, self.n_samples, batch_size=1000)
        gen = feature_stats(samples.flatten(1))
        ref_stats = feature_stats(ref.x.flatten(1))
        return MetricResult(
            value=frechet_distance(gen, ref_stats),
            settings={"feature_extractor": "raw coordinates", "n_samples": gen.n, "n_reference": ref_stats.n,
                      "reference_split": self.split},
            details={"reference_split_hash": ref.content_hash()},
        )
