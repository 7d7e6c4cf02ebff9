"""The metrics through the plugin interface on a real registered model: training must show in every metric."""

from __future__ import annotations

import torch

from benchbed.testing import evaluate_metric, fit, load_dataset, make_eval_context


def test_trained_vae_beats_untrained_vae_on_every_metric() -> None:
    bundle = load_dataset("digits", seed=0)
    settings = {"recon_mse": {}, "loglik": {"k": 20, "n_examples": 100},
                "fd_domain": {"n_samples": 500, "steps": 150, "feature_dim": 16, "width": 8}}
    scores = {}
    for steps in (1, 300):
        model, _ = fit("vae", bundle, steps=steps, batch_size=100, seed=0)
        ctx = make_eval_context(model, bundle, seed=0)
        scores[steps] = {name: evaluate_metric(name, ctx, **kw) for name, kw in settings.items()}
    before, after = scores[1], scores[300]
    assert after["recon_mse"].value < 0.5 * before["recon_mse"].value
    assert after["loglik"].value > before["loglik"].value + 50  # nats per example
    assert after["loglik"].settings["estimator"] == "iwae"
    assert after["fd_domain"].value < 0.5 * before["fd_domain"].value


def test_outlier_protocol_trains_variants_under_no_grad() -> None:
    """The runner evaluates metrics under no_grad; the held-out trainings must still learn."""
    bundle = load_dataset("gmm8", seed=0)
    model, _ = fit("vae", bundle, steps=200, batch_size=100, seed=0)
    ctx = make_eval_context(model, bundle, seed=0)
    with torch.no_grad():
        res = evaluate_metric("outlier_auroc", ctx, classes=[2])
    assert res.settings["score"] == ["anomaly_score"] and res.value > 0.6
