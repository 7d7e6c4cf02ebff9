"""svebm_supervised: svebm's classifier path on the labels alone (a supervised-only baseline for svebm's claim)."""

from __future__ import annotations

import pytest
import torch

from benchbed.contracts import Batch
from benchbed.testing import fit, load_dataset

SMALL = {"latent_dim": 32}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _n_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def test_same_network_and_labels_as_svebm(digits) -> None:
    """The baseline is svebm's encoder and head (same sizes, same dropout) on svebm's labelled examples."""
    sup, _ = fit("svebm_supervised", digits, steps=0, params=SMALL)
    sv, _ = fit("svebm", digits, steps=0, params=SMALL, roles={"prior": {"n_steps": 2}})
    assert torch.equal(sup.labelled_index, sv.labelled_index) and sup.n_labelled == 100
    assert _n_params(sup.enc, sup.head) == _n_params(sv.enc, sv.ebm)
    assert [m.p for m in sup.enc.modules() if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]
    assert sup.capabilities == {"classify", "infer"}  # no generator: no sample / reconstruct metrics
    other, _ = fit("svebm_supervised", digits, steps=0, params={**SMALL, "label_seed": 1})
    assert not torch.equal(other.labelled_index, sup.labelled_index)


def test_training_ignores_the_unlabelled_batch(digits) -> None:
    """One step from the same seed gives the same weights whatever unlabelled batch the runner hands in."""
    a, _ = fit("svebm_supervised", digits, steps=0, params=SMALL, seed=3)
    b, _ = fit("svebm_supervised", digits, steps=0, params=SMALL, seed=3)
    x = digits.train.x
    torch.manual_seed(11)
    a.train_step(Batch(x[:50], None, torch.arange(50)), 0)
    torch.manual_seed(11)
    b.train_step(Batch(x[-50:].flip(0), None, torch.arange(50)), 0)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), fit("svebm_supervised", digits, steps=0,
               params=SMALL, seed=3)[0].parameters(), strict=True))


def test_learns_digits_from_100_labels(digits) -> None:
    untrained, _ = fit("svebm_supervised", digits, steps=0, params=SMALL)
    model, hist = fit("svebm_supervised", digits, steps=300, params=SMALL)
    x, y = digits.test.x, digits.test.y
    with torch.no_grad():
        acc0, acc = (float((m.classify(x).argmax(1) == y).float().mean()) for m in (untrained, model))
        assert torch.equal(model.classify(x[:20]), model.head(model.infer(x[:20])))
    assert acc0 < 0.3 and acc > 0.7, (acc0, acc)  # chance is 0.1
    assert hist[-1]["ce_labelled"] < 0.2 * hist[0]["ce_labelled"]


def test_conv_encoder_for_28_px_images() -> None:
    from benchbed.contracts import Budget, DataBundle, DatasetInfo, Split
    from benchbed.testing import build_model
    from benchbed.training import setup_model, train

    x, y = torch.rand(20, 1, 28, 28), torch.arange(20) % 10
    split = Split(x, y)
    bundle = DataBundle(info=DatasetInfo(name="fake", shape=(1, 28, 28), kind="image", n_classes=10),
                        train=split, val=split, test=split)
    model = build_model("svebm_supervised", {"channels": 4, "n_labels_per_class": 2})
    setup_model(model, bundle, Budget(1, 8), seed=0, device=torch.device("cpu"), sampler=None)
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    train(model, bundle, Budget(1, 8), seed=0, device=torch.device("cpu"))
    with torch.no_grad():
        assert model.classify(x[:3]).shape == (3, 10) and model.infer(x[:3]).shape == (3, 32)
