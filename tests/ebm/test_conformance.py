"""Every model of the ebm plugin passes benchbed's conformance checks (the same ones a third party runs)."""

from __future__ import annotations

import pytest

from benchbed.testing import check_model, load_registry_strict

SMALL_HLEBM = {"latent_dims": (4, 2), "cond_width": 32, "cond_layers": 2, "ebm_widths": (32,), "hidden": 32}


@pytest.mark.parametrize(
    ("name", "dataset", "params"),
    [
        ("hlebm", "gmm8", SMALL_HLEBM),
        ("hlebm", "digits", {**SMALL_HLEBM, "scheme": "variational"}),
        ("hlebm", "digits", {**SMALL_HLEBM, "latent_dims": (4, 3, 2)}),  # three layers
        ("svebm", "digits", {"latent_dim": 4, "hidden": 32, "ebm_width": 32}),
        ("svebm_supervised", "digits", {"latent_dim": 4, "hidden": 32, "ebm_width": 32}),
        ("triangle", "gmm8", {"latent_dim": 2, "hidden": 32}),
        ("triangle", "digits", {"latent_dim": 4, "hidden": 32}),
    ],
)
def test_check_model(name: str, dataset: str, params: dict) -> None:
    model = check_model(name, dataset=dataset, params=params)
    spec = load_registry_strict().model(name)
    assert spec.uses_sampler == (name not in ("triangle", "svebm_supervised"))
    if name == "hlebm":
        assert ("proposal" in model.capabilities) == (params.get("scheme") == "variational")


def test_bad_hyperparameters_are_named() -> None:
    from benchbed_ebm.hlebm import HLEBM

    with pytest.raises(ValueError, match="scheme"):
        HLEBM(scheme="vae")
    with pytest.raises(ValueError, match="two or more"):
        HLEBM(latent_dims=(8,))
    with pytest.raises(ValueError, match="mcmc_space"):
        HLEBM(mcmc_space="x")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize(("name", "params"), [("hlebm", {}), ("hlebm", {"scheme": "variational"}), ("svebm", {}),
                                              ("triangle", {})])
def test_conv_nets_for_28_and_32_px(shape: tuple[int, ...], name: str, params: dict) -> None:
    """28/32-px images take the convolutional nets; one training step and every capability keep shapes."""
    import torch

    from benchbed.contracts import Budget, DataBundle, DatasetInfo, Split
    from benchbed.testing import bound_sampler, build_model
    from benchbed.training import setup_model, train

    x, y = torch.rand(16, *shape), torch.arange(16) % 10
    split = Split(x, y)
    bundle = DataBundle(info=DatasetInfo(name="fake", shape=shape, kind="image", n_classes=10),
                        train=split, val=split, test=split)
    model = build_model(name, {**params, "channels": 4})
    roles = {"prior": {"n_steps": 2}, "posterior": {"n_steps": 2}}
    setup_model(model, bundle, Budget(1, 8), seed=0, device=torch.device("cpu"),
                sampler=bound_sampler(name, None, None, roles))
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    train(model, bundle, Budget(1, 8), seed=0, device=torch.device("cpu"))
    with torch.no_grad():
        assert model.sample(3).shape == (3, *shape)
        assert model.reconstruct(x[:3]).shape == (3, *shape)
        assert model.anomaly_score(x[:3]).shape == (3,)
