"""Reconstruction MSE against a direct NumPy computation, and its n/a and error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchbed.errors import NotApplicable
from benchbed.testing import check_metric, evaluate_metric, load_dataset


class _Shrink:
    """reconstruct(x) = 0.9 x + 0.05: a known error per coordinate; counts calls to check batching."""

    capabilities = frozenset({"reconstruct"})

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(int(x.shape[0]))
        return 0.9 * x + 0.05


@pytest.mark.parametrize("dataset", ["digits", "gmm8"])
def test_recon_mse_equals_numpy(dataset: str, make_ctx) -> None:
    bundle = load_dataset(dataset, seed=0)
    model = _Shrink()
    res = evaluate_metric("recon_mse", make_ctx(model, bundle), batch_size=64)
    x = bundle.test.x.numpy().astype(np.float64)
    assert res.value == pytest.approx(float(np.mean((0.9 * x + 0.05 - x) ** 2)), rel=1e-6)
    assert res.settings["n_examples"] == len(bundle.test) and res.settings["split"] == "test"
    assert max(model.batch_sizes) == 64 and sum(model.batch_sizes) == len(bundle.test)
    assert res.settings["scale"] == ("[0,1] pixels" if dataset == "digits" else "raw coordinates")


def test_recon_mse_of_identity_is_zero_and_subset_is_recorded(make_ctx) -> None:
    bundle = load_dataset("digits", seed=0)

    class Identity:
        capabilities = frozenset({"reconstruct"})

        def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
            return x.clone()

    res = evaluate_metric("recon_mse", make_ctx(Identity(), bundle), n_examples=50)
    assert res.value == 0.0 and res.settings["n_examples"] == 50


def test_recon_mse_errors(make_ctx) -> None:
    bundle = load_dataset("gmm8", seed=0)

    class NoRecon:
        capabilities = frozenset({"sample"})

    with pytest.raises(NotApplicable, match="reconstruct"):
        evaluate_metric("recon_mse", make_ctx(NoRecon(), bundle))

    class WrongShape:
        capabilities = frozenset({"reconstruct"})

        def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :1]

    with pytest.raises(NotApplicable, match="shape"):
        evaluate_metric("recon_mse", make_ctx(WrongShape(), bundle))


def test_every_metric_passes_the_conformance_check() -> None:
    """Each is evaluated on a registered model it applies to (check_metric picks one), image metrics on
    digits; FID may only say that its Inception weights are not on this machine."""
    for name in ("recon_mse", "fid", "fd_domain", "fd_raw", "loglik", "loglik_bpd", "outlier_auroc", "outlier_auprc"):
        dataset = "digits" if name in ("fid", "fd_domain", "loglik_bpd") else "gmm8"
        try:
            result = check_metric(name, dataset=dataset)
        except NotApplicable as exc:
            assert name == "fid" and "weights" in str(exc), (name, exc)
            continue
        assert result is not None and math.isfinite(result.value), name
