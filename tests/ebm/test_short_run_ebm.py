"""short_run_ebm: conformance, learning on a tiny budget, and the sampler-axis reading of the official update."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch

from benchbed.contracts import Budget
from benchbed.testing import bound_sampler, build_model, check_model, fit, load_dataset
from benchbed.training import setup_model

GMM_PARAMS = {"n_steps": 15, "lr": 2e-3, "hidden": 64}
DIGITS_PARAMS = {"n_steps": 10, "lr": 2e-3, "n_f": 8}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dataset", ["gmm8", "digits"])
@pytest.mark.parametrize("sampler", ["langevin", "hmc"])
def test_check_model(dataset: str, sampler: str) -> None:
    """Both built-in samplers drive the chains, on vectors and on [B, 1, 8, 8] images."""
    check_model("short_run_ebm", dataset=dataset, sampler=sampler)


def test_persistent_init_passes_and_updates_its_bank() -> None:
    params = {"n_steps": 3, "n_f": 4, "hidden": 16, "init": "persistent", "bank_size": 40}
    model = check_model("short_run_ebm", dataset="digits", params=params)
    assert model.bank.shape == (40, 1, 8, 8)
    fresh, _ = fit("short_run_ebm", load_dataset("digits"), steps=0, batch_size=32, params=params)
    changed = (model.bank != fresh.bank).flatten(1).any(dim=1)
    assert int(changed.sum()) >= 32  # three steps of 32 distinct rows each touched at least one batch


@pytest.mark.parametrize(("dataset", "params", "steps"), [("gmm8", GMM_PARAMS, 150), ("digits", DIGITS_PARAMS, 100)])
def test_learns(dataset: str, params: dict, steps: int, mmd2: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Short-run samples move to the data: MMD^2 to the test split falls well below the untrained chain's."""
    bundle = load_dataset(dataset)
    untrained, _ = fit("short_run_ebm", bundle, steps=0, batch_size=64, params=params)
    model, history = fit("short_run_ebm", bundle, steps=steps, batch_size=64, params=params)
    x = bundle.test.x[:500]
    torch.manual_seed(0)
    with torch.no_grad():
        before, after = mmd2(untrained.sample(500), x), mmd2(model.sample(500), x)
    assert after < 0.25 * before, (after, before)
    for point in history:  # d_t is the anatomy paper's U(data) - U(samples) = f_samples - f_data
        assert math.isclose(point["d_t"], point["f_samples"] - point["f_data"], rel_tol=1e-3, abs_tol=1e-5)


def test_langevin_at_the_defaults_is_the_official_update() -> None:
    """The langevin sampler with step sigma on f / T, T = sigma^2 / (2 a), takes x + a grad f + sigma eps."""
    bundle = load_dataset("digits")
    params = {"n_steps": 4, "drift": 1.0, "noise": 0.01, "n_f": 4}
    model = build_model("short_run_ebm", params)
    setup_model(model, bundle, Budget(steps=1, batch_size=8), seed=0, device=torch.device("cpu"),
                sampler=bound_sampler("short_run_ebm", "langevin"))
    x0 = model._noise(6)
    torch.manual_seed(3)
    chain, _ = model._chains(x0)
    torch.manual_seed(3)
    x = x0.clone()
    for _ in range(4):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(model.f(x).sum(), x)
        x = (x + 1.0 * grad + 0.01 * torch.randn(x.shape)).detach()
    assert torch.allclose(chain, x, atol=1e-5), float((chain - x).abs().max())


def test_infer_and_reconstruct_and_score() -> None:
    """infer() optimises the initial noise: reconstructions beat the chain from the starting noise;
    anomaly_score is the energy -f."""
    bundle = load_dataset("gmm8")
    model, _ = fit("short_run_ebm", bundle, steps=60, batch_size=64, params={**GMM_PARAMS, "infer_steps": 40,
                                                                          "infer_lr": 0.1})
    x = bundle.test.x[:64]
    torch.manual_seed(0)
    with torch.no_grad():
        z = model.infer(x)
        assert z.shape == x.shape and float(z.abs().max()) <= model.init_scale
        rec = float(((model.reconstruct(x) - x) ** 2).mean())
        model.infer_steps = 0
        start = float(((model.reconstruct(x) - x) ** 2).mean())
        assert torch.allclose(model.anomaly_score(x), -model.energy(model.scale.to_model(x)))
    assert rec < 0.5 * start, (rec, start)


def test_bad_init_is_named() -> None:
    from benchbed_ebm.short_run_ebm import ShortRunEBM

    with pytest.raises(ValueError, match="init"):
        ShortRunEBM(init="data")  # type: ignore[arg-type]


@pytest.mark.parametrize(("dataset", "arch"), [("gmm8", "auto"), ("digits", "auto"), ("digits", "mlp")])
def test_fused_engine_equals_reference(dataset: str, arch: str) -> None:
    """Engine option ``fused`` (hand-written chain gradients) against the reference autograd path: an MLP
    (vector data, or images with ``arch="mlp"``) gives the same chains and updates bit for bit, the
    channels-last conv tower of images agrees to floating-point rounding."""
    from benchbed.contracts import Batch, EngineOptions

    bundle = load_dataset(dataset)
    params = {"n_steps": 5, "n_f": 8, "hidden": 32, "arch": arch}
    models = []
    for fused in (False, None):
        model = build_model("short_run_ebm", params)
        setup_model(model, bundle, Budget(steps=3, batch_size=32), seed=0, device=torch.device("cpu"),
                    sampler=bound_sampler("short_run_ebm", "langevin"), engine=EngineOptions(fused=fused))
        models.append(model)
    outs: list[list[dict[str, float]]] = [[], []]
    for step in range(3):
        batch = Batch(bundle.train.x[32 * step : 32 * (step + 1)], None, torch.arange(32))
        for model, out in zip(models, outs, strict=True):
            torch.manual_seed(step)
            out.append(dict(model.train_step(batch, step)))
    draws = []
    for model in models:
        torch.manual_seed(9)
        draws.append(model.sample(16))
    if dataset == "gmm8" or arch == "mlp":
        assert outs[0] == outs[1]
        assert torch.equal(draws[0], draws[1])
        for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True):
            assert torch.equal(a, b)
    else:
        for ref, got in zip(*outs, strict=True):
            assert got.keys() == ref.keys()
            for key in ref:
                assert got[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), key
        torch.testing.assert_close(draws[1], draws[0], rtol=1e-4, atol=1e-5)
