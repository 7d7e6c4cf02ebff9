"""The engine option ``fused`` changes how the flow models compute, never what: training steps and draws
with the block-wise flow, hand-written derivatives and fused Adam equal the reference path's (zuko's own
objects, autograd, default Adam) to floating-point rounding."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchbed.contracts import Batch, Budget, DataBundle, EngineOptions
from benchbed.testing import bound_sampler, build_model
from benchbed.training import setup_model

TINY_FLOW = {"transforms": 2, "hidden": (16,), "bins": 4}
CASES = [
    ("flow", TINY_FLOW, 3),
    ("fce", {**TINY_FLOW, "energy_hidden": (16,)}, 3),
    ("flow_ebm", {**TINY_FLOW, "energy_hidden": (16,)}, 4),  # 2 flow steps, then 2 energy steps
]


def _pair(name: str, params: dict[str, Any], bundle: DataBundle, steps: int) -> list[Any]:
    """The model set up twice with the same seed: reference engine first, then the fused one."""
    sampler = bound_sampler(name, "langevin", roles={"latent": {"n_steps": 5}}) if name == "flow_ebm" else None
    models = []
    for fused in (False, None):
        model = build_model(name, params)
        setup_model(model, bundle, Budget(steps, 32), seed=0, device=torch.device("cpu"), sampler=sampler,
                    engine=EngineOptions(fused=fused))
        models.append(model)
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    return models


@pytest.mark.parametrize("dataset", ["gmm8", "digits"])
@pytest.mark.parametrize(("name", "params", "steps"), CASES, ids=[c[0] for c in CASES])
def test_fused_engine_equals_reference(
    name: str, params: dict[str, Any], steps: int, dataset: str, gmm8: DataBundle, digits: DataBundle
) -> None:
    bundle = gmm8 if dataset == "gmm8" else digits
    plain, fused = _pair(name, params, bundle, steps)
    assert plain.density.coupling is None and fused.density.coupling is not None
    for step in range(steps):
        batch = Batch(bundle.train.x[32 * step : 32 * (step + 1)], None, torch.arange(32))
        outs = []
        for model in (plain, fused):
            torch.manual_seed(100 + step)  # the same dequantisation noise, draws and chain noise
            outs.append(model.train_step(batch, step))
        assert outs[0].keys() == outs[1].keys()
        for key in outs[0]:
            assert outs[1][key] == pytest.approx(outs[0][key], rel=1e-4, abs=1e-4), (step, key)
    for a, b in zip(plain.state_dict().values(), fused.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    draws = []
    for model in (plain, fused):
        torch.manual_seed(7)
        draws.append(model.sample(64))
    torch.testing.assert_close(draws[1], draws[0], rtol=1e-3, atol=1e-3)
