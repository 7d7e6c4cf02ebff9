"""Small helpers shared by the metrics: batched model calls, capability checks, split selection."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from benchbed.contracts import DataBundle, Split


def batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive slices of ``x`` [N, ...] of at most ``batch_size`` rows (the last may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, int(x.shape[0]), batch_size):
        yield x[start : start + batch_size]


@torch.no_grad()
def map_batches(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Apply ``fn`` to ``x`` [N, ...] in batches on ``device``; results concatenated on the CPU.

    Called under ``torch.no_grad()``, as ``docs/architecture.md#contracts`` promises capability
    methods; a model that needs gradients inside (posterior Langevin) enables them for its latents
    itself.
    """
    outs = [fn(b.to(device)).detach().cpu() for b in batches(x, batch_size)]
    if not outs:
        raise ValueError("map_batches: empty input")
    return torch.cat(outs, dim=0)


def head(split: Split, n: int | None) -> Split:
    """The first ``n`` examples of ``split`` (all of it when ``n`` is ``None`` or larger)."""
    if n is None or n >= len(split):
        return split
    if n < 1:
        raise ValueError(f"number of examples must be >= 1 or None, got {n}")
    return Split(split.x[:n], None if split.y is None else split.y[:n])


def split_of(data: DataBundle, name: str) -> Split:
    """``data.train`` / ``data.val`` / ``data.test`` by name, with a clear error otherwise."""
    if name not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
    return getattr(data, name)


@torch.no_grad()
def draw_samples(model: object, n: int, *, batch_size: int) -> torch.Tensor:
    """``n`` samples from ``model.sample`` drawn ``batch_size`` at a time, on the CPU."""
    if n < 1:
        raise ValueError(f"number of samples must be >= 1, got {n}")
    out: list[torch.Tensor] = []
    remaining = n
    while remaining > 0:
        k = min(batch_size, remaining)
        out.append(model.sample(k).detach().cpu())  # type: ignore[attr-defined]
        remaining -= k
    return torch.cat(out, dim=0)
