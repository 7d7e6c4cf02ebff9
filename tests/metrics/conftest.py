"""Fixtures for the metrics tests: an isolated benchbed cache directory and an eval-context builder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from benchbed.contracts import DataBundle, EvalContext


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test writes FD-domain extractors and FID statistics to a fresh temporary data root."""
    monkeypatch.setenv("BENCHBED_DATA", str(tmp_path_factory.mktemp("benchbed_data")))
    torch.manual_seed(0)


@pytest.fixture
def make_ctx() -> Callable[..., EvalContext]:
    """``make_ctx(model, bundle, train_variant=None)``: an EvalContext on the CPU."""

    def build(model: Any, bundle: DataBundle, train_variant: Callable[[DataBundle], Any] | None = None) -> EvalContext:
        def no_variant(_: DataBundle) -> Any:
            raise AssertionError("this test does not train variants")

        return EvalContext(model=model, data=bundle, device=torch.device("cpu"), seed=0,
                           train_variant=train_variant or no_variant)

    return build
