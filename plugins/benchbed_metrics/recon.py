"""Reconstruction MSE: mean squared error per pixel / coordinate on the test split.

Definition: ``docs/architecture.md#metric-definitions``.

The model reconstructs through its own inference (``reconstruct = decode(infer(x))``, with whatever
steps it was configured with), and the error is measured on the data scale: [0, 1] for images and the
raw coordinates for vector data.  Lower is better.
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Gt

from benchbed.contracts import DataBundle, EvalContext, MetricResult
from benchbed.errors import NotApplicable
from benchbed_metrics._batching import head, map_batches, split_of


class ReconMSE:
    """Per-coordinate reconstruction MSE on a split.

    Args:
        split: which split to reconstruct (``docs/architecture.md#metric-definitions`` says the test split).
        n_examples: use only the first ``n_examples`` examples; ``None`` = the whole split.
        batch_size: examples per ``reconstruct`` call.
    """

    def __init__(
        self,
        *,
        split: str = "test",
        n_examples: Annotated[int | None, Gt(0)] = None,
        batch_size: Annotated[int, Gt(0)] = 500,
    ) -> None:
        self.split = split
        self.n_examples = n_examples
        self.batch_size = batch_size

    def check_data(self, data: DataBundle) -> None:
        """The split must exist (checked before training)."""
        split_of(data, self.split)

    def evaluate(self, ctx: EvalContext) -> MetricResult:
        """Mean over examples and coordinates of ``(reconstruct(x) - x)^2``; details hold the per-example spread."""
        data = head(split_of(ctx.data, self.split), self.n_examples)
        x = data.x
        x_hat = map_batches(ctx.model.reconstruct, x, batch_size=self.batch_size, device=ctx.device)
        if x_hat.shape != x.shape:
            raise NotApplicable(
                f"metric 'recon_mse': {type(ctx.model).__name__}.reconstruct returned shape "
                f"{tuple(x_hat.shape)} for input {tuple(x.shape)}"
            )
        per_example = (x_hat.double() - x.double()).pow(2).flatten(1).mean(dim=1)  # [N]
        if not torch.isfinite(per_example).all():
            raise ValueError(f"metric 'recon_mse': {type(ctx.model).__name__}.reconstruct produced non-finite values")
        n = int(per_example.shape[0])
        value = float(per_example.mean())
        stderr = float(per_example.std(unbiased=True) / n**0.5) if n > 1 else float("nan")
        scale = "[0,1] pixels" if ctx.data.info.kind == "image" else "raw coordinates"
        return MetricResult(
            value=value,
            settings={"split": self.split, "n_examples": n, "batch_size": self.batch_size, "scale": scale,
                      "reduction": "mean per coordinate"},
            details={"split_hash": data.content_hash()},
            stderr=stderr if n > 1 else None, per_example=per_example,
        )
