"""MMD^2 throughput and memory, each against a naive ``torch.cdist`` implementation in the same run.

* 4096 vs 4096 points in 784 dims (MNIST-sized), official GMMN variances (2, 5, ..., 80): the dense
  path and the chunked path (blocks of 1024) against the naive version, which builds the three full
  Gram matrices from ``torch.cdist(a, b) ** 2``.  Values must agree.
* 20 000 vs 20 000 points in 784 dims, chunked (blocks of 2048), in a subprocess whose peak resident
  memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``; tracemalloc does not see torch) must stay
  below 2 GiB.  The naive version runs in its own subprocess for the time and memory ratios (it
  needs ~7 GiB; it is skipped, with the reason printed, when less than 10 GiB is available).

Run: ``OMP_NUM_THREADS=1 pytest benchmarks/bench_mmd.py -p no:xdist --benchmark-only -s``.
``BENCHBED_BENCH_MMD_N`` overrides the 20 000 (for a quicker look).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchbed.blocks.mmd import mmd2
from benchbed_mmd.kernels import GMMN_MNIST_VARIANCES

DIM = 784
N_SMALL = 4096
N_LARGE = int(os.environ.get("BENCHBED_BENCH_MMD_N", "20000"))
CHUNK_SMALL, CHUNK_LARGE = 1024, 2048
LIMIT_BYTES = 2 * 1024**3
NAIVE_LARGE_NEEDS = 10 * 1024**3


def point_sets(n: int, dim: int = DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """Two seeded float32 sets in [0, 1]^dim from slightly different distributions."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, dim, generator=g), 0.9 * torch.rand(n, dim, generator=g) + 0.05


def naive_mmd2(x: torch.Tensor, y: torch.Tensor, variances: tuple[float, ...]) -> torch.Tensor:
    """The textbook implementation: full Gram matrices from ``torch.cdist``; biased V-statistic."""

    def mean_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(a, b) ** 2
        return sum(torch.exp(-d2 / (2 * v)) for v in variances).mean()

    return mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y)


def best_time(fn, repeats: int = 2) -> tuple[float, float]:
    """(best wall time in s, value) of ``fn`` over ``repeats`` runs."""
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        t = time.perf_counter()
        value = float(fn())
        best = min(best, time.perf_counter() - t)
    return best, value


@pytest.mark.parametrize("chunk", [None, CHUNK_SMALL], ids=["dense", "chunked"])
def test_mmd2_4096x784(benchmark, chunk: int | None) -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    x, y = point_sets(N_SMALL)
    naive_s, naive_v = best_time(lambda: naive_mmd2(x, y, GMMN_MNIST_VARIANCES))
    with torch.no_grad():
        value = float(benchmark.pedantic(lambda: mmd2(x, y, GMMN_MNIST_VARIANCES, chunk_size=chunk),
                                         rounds=3, iterations=1))
    ours_s = benchmark.stats.stats.min
    benchmark.extra_info.update(naive_cdist_s=naive_s, speedup_vs_naive=naive_s / ours_s, value=value,
                                naive_value=naive_v)
    print(f"\nMMD^2 {N_SMALL}x{N_SMALL}x{DIM} ({'dense' if chunk is None else f'chunk {chunk}'}): "
          f"{ours_s:.2f} s vs naive cdist {naive_s:.2f} s -> {naive_s / ours_s:.2f}x; value {value:.6g}")
    assert value == pytest.approx(naive_v, rel=1e-4)


# ------------------------------------------------------------------------------------------------
# Large sets: each variant in a fresh subprocess so that ru_maxrss is its own peak.


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _run_worker(kind: str, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, kind, str(n)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return json.loads(out.stdout.strip().splitlines()[-1])


def block_bytes(chunk: int, n_views: int = 1) -> int:
    """Analytic bound on the live temporaries of one block without autograd (float32, chunk^2 each):
    the squared distances, the running kernel sum and one scratch buffer for the scales (the
    ``|a|^2 + |b|^2`` addend lives only during the matmul, before the other two exist), plus the
    running product for each extra view of a joint MMD.  Blocks are freed before the next one."""
    return (2 + n_views) * chunk * chunk * 4


def test_mmd2_chunked_20000_within_2gib(benchmark) -> None:
    data_bytes = 2 * N_LARGE * DIM * 4
    assert data_bytes + block_bytes(CHUNK_LARGE) < LIMIT_BYTES / 4  # the design leaves ample headroom
    ours = benchmark.pedantic(lambda: _run_worker("chunked", N_LARGE), rounds=1, iterations=1)
    info: dict[str, object] = {"chunked_s": ours["seconds"], "chunked_peak_rss_bytes": ours["peak_rss"],
                               "data_bytes": data_bytes, "block_bytes_bound": block_bytes(CHUNK_LARGE)}
    msg = (f"\nchunked MMD^2 {N_LARGE}x{N_LARGE}x{DIM} (blocks of {CHUNK_LARGE}): {ours['seconds']:.1f} s, "
           f"peak RSS {ours['peak_rss'] / 2**30:.2f} GiB (before computing {ours['rss_before'] / 2**30:.2f} GiB)")
    if _mem_available() >= NAIVE_LARGE_NEEDS:
        naive = _run_worker("naive", N_LARGE)
        info.update(naive_s=naive["seconds"], naive_peak_rss_bytes=naive["peak_rss"],
                    speedup_vs_naive=naive["seconds"] / ours["seconds"],
                    memory_ratio_naive_over_chunked=naive["peak_rss"] / ours["peak_rss"])
        msg += (f"; naive cdist {naive['seconds']:.1f} s, peak RSS {naive['peak_rss'] / 2**30:.2f} GiB -> "
                f"time ratio {naive['seconds'] / ours['seconds']:.2f}x, memory ratio "
                f"{naive['peak_rss'] / ours['peak_rss']:.1f}x")
        assert ours["value"] == pytest.approx(naive["value"], rel=1e-4)
    else:
        msg += f"; naive run skipped: only {_mem_available() / 2**30:.1f} GiB available (needs ~10 GiB)"
    benchmark.extra_info.update(info)
    print(msg)
    assert ours["peak_rss"] < LIMIT_BYTES


def _worker(kind: str, n: int) -> None:
    """Subprocess entry: compute one variant and print {seconds, value, peak_rss, rss_before}."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    x, y = point_sets(n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    t = time.perf_counter()
    with torch.no_grad():
        if kind == "naive":
            value = float(naive_mmd2(x, y, GMMN_MNIST_VARIANCES))
        else:
            value = float(mmd2(x, y, GMMN_MNIST_VARIANCES, chunk_size=CHUNK_LARGE))
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "value": value, "peak_rss": peak, "rss_before": rss_before}))


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]))
