"""The divergence triangle learns on a tiny budget: reconstructions and samples beat the untrained model."""

from __future__ import annotations

import torch

from benchbed.testing import fit, load_dataset

PARAMS = {"latent_dim": 8, "hidden": 128}


def test_triangle_learns_digits(scores) -> None:
    bundle = load_dataset("digits", seed=0)
    untrained, _ = fit("triangle", bundle, steps=0, batch_size=64, params=PARAMS)
    model, history = fit("triangle", bundle, steps=250, batch_size=64, params=PARAMS)
    rec0, mmd0 = scores(untrained, bundle)
    rec, mmd = scores(model, bundle)
    # Predicting every pixel by its training mean: a model must do better than that to have learned.
    mean_image = float(((bundle.test.x[:300] - bundle.train.x.mean(0)) ** 2).mean())
    assert rec < 0.5 * rec0 and rec < 0.8 * mean_image, (rec, rec0, mean_image)
    assert mmd < 0.3 * mmd0, (mmd, mmd0)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)


def test_triangle_anomaly_score_is_the_energy() -> None:
    bundle = load_dataset("digits", seed=0)
    model, _ = fit("triangle", bundle, steps=2, batch_size=32, params=PARAMS)
    x = bundle.test.x[:16]
    with torch.no_grad():
        assert torch.allclose(model.anomaly_score(x), model.energy(2 * x - 1).squeeze(-1))
