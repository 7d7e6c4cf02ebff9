"""Fréchet distance against the closed form for Gaussians; FD-domain and FD-raw behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.contracts import DataBundle, Split
from benchbed.errors import NotApplicable
from benchbed.testing import evaluate_metric, load_dataset
from benchbed_metrics import domain_features
from benchbed_metrics.frechet import FeatureStats, feature_stats, frechet_between, frechet_distance


def _closed_form(mu1: torch.Tensor, c1: torch.Tensor, mu2: torch.Tensor, c2: torch.Tensor) -> float:
    """||mu1-mu2||^2 + Tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), via symmetric eigendecompositions
    (an independent route from scipy's sqrtm of the non-symmetric C1 C2 that pytorch-fid uses)."""

    def sqrtm_sym(a: torch.Tensor) -> torch.Tensor:
        w, v = torch.linalg.eigh(a)
        return v @ torch.diag(w.clamp_min(0).sqrt()) @ v.T

    r1 = sqrtm_sym(c1)
    cross = sqrtm_sym(r1 @ c2 @ r1)
    return float((mu1 - mu2).pow(2).sum() + torch.trace(c1 + c2 - 2 * cross))


def _random_gaussian(d: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return torch.randn(d, generator=gen, dtype=torch.float64), a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_distance_of_exact_statistics_matches_closed_form() -> None:
    gen = torch.Generator().manual_seed(1)
    (m1, c1), (m2, c2) = _random_gaussian(5, gen), _random_gaussian(5, gen)
    got = frechet_distance(FeatureStats(m1.numpy(), c1.numpy(), 0), FeatureStats(m2.numpy(), c2.numpy(), 0))
    assert got == pytest.approx(_closed_form(m1, c1, m2, c2), rel=1e-8, abs=1e-10)


def test_frechet_between_gaussian_samples_agrees_with_closed_form() -> None:
    gen = torch.Generator().manual_seed(2)
    (m1, c1), (m2, c2) = _random_gaussian(4, gen), _random_gaussian(4, gen)
    n = 100_000
    x = m1 + torch.randn(n, 4, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(c1).T
    y = m2 + torch.randn(n, 4, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(c2).T
    exact = _closed_form(m1, c1, m2, c2)
    assert exact > 1.0  # a real difference, not a degenerate zero
    assert frechet_between(x, y) == pytest.approx(exact, rel=0.03)
    # The same distribution on both sides: only estimation noise, O(d/n).
    assert frechet_between(x[: n // 2], x[n // 2 :]) < 0.01


def test_feature_stats_match_numpy() -> None:
    f = torch.randn(50, 3)
    s = feature_stats(f)
    assert np.allclose(s.mu, f.double().mean(0).numpy()) and np.allclose(s.sigma, np.cov(f.double().numpy().T))
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(f[:1])


class _Resampler:
    """A 'model' whose samples are validation images plus Gaussian pixel noise (independent of the test split)."""

    capabilities = frozenset({"sample"})

    def __init__(self, pool: torch.Tensor, noise: float) -> None:
        self.pool, self.noise = pool, noise
        self.gen = torch.Generator().manual_seed(3)

    def sample(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, self.pool.shape[0], (n,), generator=self.gen)
        x = self.pool[idx]
        return (x + self.noise * torch.randn(x.shape, generator=self.gen)).clamp(0, 1)


FD_SETTINGS = {"steps": 150, "feature_dim": 16, "width": 8, "n_samples": 1000}


def test_fd_domain_is_small_for_same_distribution_and_grows_with_noise(make_ctx) -> None:
    bundle = load_dataset("digits", seed=0)
    # Two halves of one split through the same extractor: only sampling noise separates them.
    pool = torch.cat([bundle.train.x, bundle.val.x])
    values = [evaluate_metric("fd_domain", make_ctx(_Resampler(pool, s), bundle), **FD_SETTINGS).value
              for s in (0.0, 0.1, 0.2, 0.4)]
    assert values == sorted(values), values
    assert values[0] < 0.1 * values[-1], values

    ext = domain_features.load_or_train(bundle.info, bundle.train, bundle.test,
                                        domain_features.ExtractorConfig(kind="classifier", steps=150, feature_dim=16,
                                                                        width=8), device=torch.device("cpu"))
    every = torch.cat([bundle.train.x, bundle.val.x, bundle.test.x])
    x = every[torch.randperm(len(every), generator=torch.Generator().manual_seed(0))]
    a, b = x[: len(x) // 2], x[len(x) // 2 :]  # random halves (a split may be ordered by class)
    fa = ext.features(a)
    d = [frechet_between(fa, ext.features((b + s * torch.randn(b.shape)).clamp(0, 1))) for s in (0.0, 0.1, 0.2, 0.4)]
    scale = float(feature_stats(fa).sigma.trace())  # FD's natural scale: total feature variance
    # ~0 up to finite-sample bias (about 0.3% of the feature variance here), then growing with the noise.
    assert d == sorted(d) and d[0] < 0.01 * scale and d[0] < 0.15 * d[-1], (d, scale)
    assert ext.test_accuracy is not None and ext.test_accuracy > 0.8  # the features are meaningful


def test_fd_domain_extractor_is_cached_by_content_hash(make_ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = load_dataset("digits", seed=0)
    model = _Resampler(bundle.val.x, 0.0)
    first = evaluate_metric("fd_domain", make_ctx(model, bundle), **FD_SETTINGS)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached extractor should have been loaded, not retrained")

    monkeypatch.setattr(domain_features, "_train", no_training)
    second = evaluate_metric("fd_domain", make_ctx(model, bundle), **FD_SETTINGS)
    assert second.settings["weights_sha256"] == first.settings["weights_sha256"]
    assert second.settings["extractor_test_accuracy"] == first.settings["extractor_test_accuracy"]
    # Another training split (seed 1) has another content hash, hence another extractor.
    other = load_dataset("digits", seed=1)
    monkeypatch.undo()
    third = evaluate_metric("fd_domain", make_ctx(model, other), **FD_SETTINGS)
    assert third.settings["weights_sha256"] != first.settings["weights_sha256"]


def test_fd_domain_uses_an_autoencoder_without_labels(make_ctx) -> None:
    full = load_dataset("digits", seed=0)
    bundle = DataBundle(info=full.info.__class__(name="digits_unlabelled", shape=full.info.shape, kind="image"),
                        train=Split(full.train.x), val=Split(full.val.x), test=Split(full.test.x))
    res = evaluate_metric("fd_domain", make_ctx(_Resampler(full.val.x, 0.0), bundle), **FD_SETTINGS)
    assert "autoencoder" in res.settings["feature_extractor"] and math.isfinite(res.value)
    with pytest.raises(NotApplicable, match="no labels"):
        evaluate_metric("fd_domain", make_ctx(_Resampler(full.val.x, 0.0), bundle), extractor="classifier")


def test_fd_raw_matches_frechet_on_coordinates(make_ctx) -> None:
    bundle = load_dataset("gmm8", seed=0)

    class Shifted:
        """Hands out consecutive training points shifted by (1, 0) (the metric samples in batches)."""

        capabilities = frozenset({"sample"})
        used = 0

        def sample(self, n: int) -> torch.Tensor:
            self.used += n
            return bundle.train.x[self.used - n : self.used] + torch.tensor([1.0, 0.0])

    res = evaluate_metric("fd_raw", make_ctx(Shifted(), bundle), n_samples=len(bundle.test))
    expected = frechet_between(bundle.train.x[: len(bundle.test)] + torch.tensor([1.0, 0.0]), bundle.test.x)
    assert res.value == pytest.approx(expected) and res.value > 0.5
    with pytest.raises(NotApplicable, match="vector"):
        evaluate_metric("fd_raw", make_ctx(Shifted(), load_dataset("digits", seed=0)))
