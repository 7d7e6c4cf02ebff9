"""Throughput of the expensive metrics, each against a baseline measured in the same process.

* ``fd_domain`` on 10 000 28x28 images (digits upsampled to MNIST size, plus noise): features of the
  benchbed-trained CNN + pytorch-fid's Fréchet distance, against the cheapest FD of the same size
  (a fixed random projection of the pixels to the same 64 features).  The extractor's one-off
  training (cached on disk afterwards) is timed separately.
* AIS (HMC, pilot-tuned steps) on 1 000 digits with a small Gaussian decoder (latent 8, MLP 8-128-64),
  against prior importance sampling with the same number of decoder evaluations.

Run: ``OMP_NUM_THREADS=1 pytest benchmarks/bench_metrics.py -p no:xdist --benchmark-only -s``.
"""

from __future__ import annotations

import math
import tempfile
import time

import pytest
import torch
from torch import nn

from benchbed.contracts import DataBundle, DatasetInfo, EvalContext, Split
from benchbed.testing import load_dataset
from benchbed_metrics.fd_domain import FDDomain
from benchbed_metrics.frechet import frechet_between
from benchbed_metrics.importance import prior_is_log_marginal
from benchbed_metrics.loglik import LogLikelihood

N_IMAGES = 10_000
N_AIS = 1000


def _upsample(split: Split) -> Split:
    x = nn.functional.interpolate(split.x, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    return Split(x.contiguous(), split.y)


class _Pool:
    capabilities = frozenset({"sample"})

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.used = x, 0

    def sample(self, n: int) -> torch.Tensor:
        self.used += n
        return self.x[(self.used - n) % len(self.x) :][:n]


def test_fd_domain_throughput(benchmark, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.setenv("BENCHBED_DATA", tempfile.mkdtemp())
    d = load_dataset("digits", seed=0)
    bundle = DataBundle(info=DatasetInfo("digits28", (1, 28, 28), "image", n_classes=10),
                        train=_upsample(d.train), val=_upsample(d.val), test=_upsample(d.test))
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(bundle.train), (N_IMAGES,), generator=gen)
    images = (bundle.train.x[idx] + 0.05 * torch.randn(N_IMAGES, 1, 28, 28, generator=gen)).clamp(0, 1)
    metric = FDDomain(n_samples=N_IMAGES, steps=1000)
    ctx = lambda: EvalContext(_Pool(images), bundle, torch.device("cpu"), 0, lambda b: None)  # noqa: E731

    t = time.perf_counter()
    first = metric.evaluate(ctx())  # trains and caches the extractor
    train_s = time.perf_counter() - t
    result = benchmark.pedantic(lambda: metric.evaluate(ctx()), rounds=3, iterations=1)
    fd_s = benchmark.stats.stats.median

    proj = torch.randn(28 * 28, 64, generator=gen) / 28.0
    t = time.perf_counter()
    frechet_between(images.flatten(1) @ proj, bundle.test.x.flatten(1) @ proj)
    base_s = time.perf_counter() - t
    benchmark.extra_info.update(images_per_s=N_IMAGES / fd_s, extractor_training_s=train_s,
                                baseline_projection_fd_s=base_s, ratio_vs_projection=fd_s / base_s,
                                fd_domain=result.value, test_accuracy=first.settings["extractor_test_accuracy"])
    print(f"\nfd_domain: {N_IMAGES / fd_s:,.0f} images/s ({fd_s:.2f} s for {N_IMAGES}); extractor training "
          f"{train_s:.1f} s once (test acc {first.settings['extractor_test_accuracy']:.3f}); "
          f"random-projection FD baseline {base_s:.3f} s, ratio {fd_s / base_s:.1f}x")
    assert result.value == pytest.approx(first.value)


class _DigitDecoder:
    """p(z) = N(0, I_8), p(x|z) = N(x; sigmoid(MLP(z)), 0.2^2 I_64): a small decoder on 8x8 digits."""

    capabilities = frozenset({"log_joint", "log_prior"})

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 128), nn.Softplus(), nn.Linear(128, 64))
        self.sigma = 0.2

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * z.pow(2).sum(1) - 4 * math.log(2 * math.pi)

    def sample_prior_base(self, n: int) -> torch.Tensor:
        return torch.randn(n, 8)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = torch.sigmoid(self.net(z))
        se = (x.flatten(1) - mean).pow(2).sum(1)
        return -0.5 * se / self.sigma**2 - 64 * math.log(self.sigma * math.sqrt(2 * math.pi)) + self.log_prior(z)


def test_ais_throughput(benchmark) -> None:
    torch.set_num_threads(1)
    bundle = load_dataset("digits", seed=0, n_val=180, n_test=N_AIS)
    model = _DigitDecoder()
    for p in model.net.parameters():
        p.requires_grad_(False)
    x = bundle.test.x
    metric = LogLikelihood(estimator="ais", n_examples=None, ais_chains=16, ais_steps=100, leapfrog=10)
    ais_est = benchmark.pedantic(lambda: metric.log_p(model, bundle, x, torch.device("cpu"))[0], rounds=1,
                                 iterations=1)
    ais_s = benchmark.stats.stats.median
    k = metric.ais.density_evaluations(metric.ais_chains)
    t = time.perf_counter()
    is_est = torch.cat([prior_is_log_marginal(b, model.log_joint, model.log_prior, model.sample_prior_base, k,
                                              chunk=k // 20) for b in x.split(50)])
    is_s = time.perf_counter() - t
    benchmark.extra_info.update(examples_per_s=N_AIS / ais_s, density_evaluations_per_example=k,
                                prior_is_s=is_s, ratio_vs_prior_is=ais_s / is_s,
                                ais_mean_nats=float(ais_est.mean()), prior_is_mean_nats=float(is_est.mean()))
    print(f"\nAIS (16 chains + 2 pilot, 100 steps, 10 leapfrog): {N_AIS / ais_s:.1f} digits/s ({ais_s:.1f} s); "
          f"prior IS with the same {k} decoder evaluations: {is_s:.1f} s, ratio {ais_s / is_s:.2f}x; "
          f"mean log p: AIS {float(ais_est.mean()):.2f} vs prior IS {float(is_est.mean()):.2f} nats")
    assert torch.isfinite(ais_est).all()
