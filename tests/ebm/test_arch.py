"""The ``arch`` parameter of the ebm plugin's models: MLPs on 28x28 images when asked (the standard
suite's CPU budget), conv nets by default there, a clear error for conv nets the data cannot take."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbed.contracts import Batch, Budget, DataBundle, DatasetInfo, Split
from benchbed.testing import bound_sampler, build_model
from benchbed.training import setup_model


def bundle(side: int) -> DataBundle:
    x = torch.rand(64, 1, side, side, generator=torch.Generator().manual_seed(0))
    split = Split(x, torch.arange(64) % 2)
    return DataBundle(DatasetInfo(name="img", shape=(1, side, side), kind="image", n_classes=2), split, split, split)


def convs(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())


SMALL = {"triangle": {"latent_dim": 4}, "vae_lebm": {"latent_dim": 4}, "hlebm": {"latent_dims": (2, 2)},
         "svebm": {"latent_dim": 4}, "short_run_ebm": {"n_steps": 2}}
DYNAMICS = {"hlebm", "svebm", "short_run_ebm"}


def setup(name: str, params: dict, data: DataBundle) -> nn.Module:
    model = build_model(name, params)
    sampler = bound_sampler(name, "langevin") if name in DYNAMICS else None
    setup_model(model, data, Budget(2, 32), seed=0, device=torch.device("cpu"), sampler=sampler)
    return model


@pytest.mark.parametrize("name", sorted(SMALL))
def test_mlp_on_28px_images_when_asked_and_conv_by_default(name: str) -> None:
    data = bundle(28)
    models = {}
    for arch in ("auto", "mlp"):
        model = setup(name, {"arch": arch, **SMALL[name]}, data)
        model.train_step(Batch(data.train.x[:32], data.train.y[:32], torch.arange(32)), 0)
        assert model.sample(3).shape == (3, 1, 28, 28)
        models[arch] = model
    assert convs(models["auto"]) > 0
    assert convs(models["mlp"]) == 0


@pytest.mark.parametrize("name", sorted(SMALL.keys() - {"short_run_ebm"}))  # its conv tower takes 8x8 images
def test_conv_on_images_it_cannot_take_is_an_error_naming_the_parameter(name: str) -> None:
    with pytest.raises(ValueError, match=r"arch='conv'.*\(1, 8, 8\)"):
        setup(name, {"arch": "conv", **SMALL[name]}, bundle(8))
    with pytest.raises(Exception, match="arch"):
        build_model(name, {"arch": "resnet"})
