"""The speed paths change no numbers: fused log-densities equal the autograd closures (value and
gradient), and LEBM's concurrent chains give bitwise the weights of the sequential order.

The engine options (``EngineOptions.fused``, ``EngineOptions.concurrent_chains``) are not model
hyperparameters, so these tests set models up with :func:`benchbed.training.setup_model`."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchbed.blocks.chains import run_concurrently
from benchbed.blocks.fused import fused_log_density
from benchbed.contracts import Batch, Budget, DataBundle, DatasetInfo, EngineOptions, Split
from benchbed.testing import bound_sampler, build_model
from benchbed.training import setup_model
from benchbed_lebm.nets import ColumnConvTranspose2d, ProjectionConvTranspose2d, Ref32Generator


def _value_and_grad(log_density: Any, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.clone().requires_grad_(True)
    value = log_density(z)
    (grad,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), grad


def _setup(name: str, params: dict[str, Any], bundle: DataBundle, engine: EngineOptions, seed: int = 0) -> Any:
    """A model built and set up (not trained) with the given engine options."""
    model = build_model(name, params)
    setup_model(model, bundle, Budget(1, 50), seed=seed, device=torch.device("cpu"),
                sampler=bound_sampler(name, None), engine=engine)
    return model


def _image_bundle(side: int) -> DataBundle:
    x = torch.rand(64, 1, side, side, generator=torch.Generator().manual_seed(0))
    split = Split(x, torch.zeros(64, dtype=torch.long))
    info = DatasetInfo(name=f"img{side}", shape=(1, side, side), kind="image", n_classes=1)
    return DataBundle(info=info, train=split, val=split, test=split)


@pytest.mark.parametrize(
    ("name", "params", "data"),
    [
        ("lebm", {"latent_dim": 6, "hidden": (32, 32), "energy_activation": "gelu"}, "digits"),
        ("lebm", {"latent_dim": 6, "hidden": (32, 32), "energy_activation": "lrelu"}, "digits"),
        ("lebm", {"latent_dim": 6, "hidden": (32, 32), "energy_activation": "silu"}, "gmm8"),
        ("lebm", {"latent_dim": 6, "arch": "conv", "ngf": 8}, "conv16"),  # autograd fallback for g
        ("abp", {"latent_dim": 6, "hidden": (32, 32)}, "digits"),
    ],
)
def test_fused_log_density_matches_autograd(
    name: str, params: dict[str, Any], data: str, request: pytest.FixtureRequest
) -> None:
    bundle = _image_bundle(16) if data == "conv16" else request.getfixturevalue(data)
    fused = _setup(name, params, bundle, EngineOptions(fused=None))  # None = on
    plain = _setup(name, params, bundle, EngineOptions(fused=False))
    assert fused.fused and not plain.fused
    plain.load_state_dict(fused.state_dict())
    # Perturb the weights so that no activation sits at a trivial point.
    with torch.no_grad():
        for p_f, p_p in zip(fused.parameters(), plain.parameters(), strict=True):
            noise = 0.1 * torch.randn_like(p_f)
            p_f.add_(noise)
            p_p.add_(noise)
    x_m = fused.scale.to_model(bundle.test.x[:7])
    z = torch.randn(7, 6)
    pairs = [(fused.posterior_log_density(x_m), plain.posterior_log_density(x_m))]
    if name == "lebm":
        pairs.append((fused_log_density(fused._fused_fn(None)), plain.log_prior))
    for fast, slow in pairs:
        v_fast, g_fast = _value_and_grad(fast, z)
        v_slow, g_slow = _value_and_grad(slow, z)
        assert torch.allclose(v_fast, v_slow, rtol=1e-5, atol=1e-4)
        assert torch.allclose(g_fast, g_slow, rtol=1e-4, atol=1e-4)
        with torch.no_grad():  # value-only path (a sampler's final evaluation)
            assert torch.allclose(fast(z), v_slow, rtol=1e-5, atol=1e-4)
        # The tape-free path of GradLogDensity: same gradient, with the value or without it.
        v_direct, g_direct = fast.value_and_grad(z)
        none, g_only = fast.value_and_grad(z, value=False)
        assert none is None
        assert torch.allclose(v_direct, v_slow, rtol=1e-5, atol=1e-4)
        for g in (g_direct, g_only):
            assert torch.allclose(g, g_slow, rtol=1e-4, atol=1e-4)


_LEBM = {"latent_dim": 4, "hidden": (32, 32), "energy_hidden": (16, 16), "prior_steps": 5, "posterior_steps": 5}


def _lebm_after_steps(bundle: DataBundle, engine: EngineOptions, steps: int = 3) -> dict[str, torch.Tensor]:
    model = _setup("lebm", _LEBM, bundle, engine)
    batch = Batch(bundle.train.x[:50], None, torch.arange(50))
    torch.manual_seed(3)
    for step in range(steps):
        model.train_step(batch, step)
    return model.state_dict()


def test_lebm_concurrent_chains_change_no_number(digits: Any) -> None:
    """One code path: the two chain sets draw from per-step generators seeded from the global RNG
    whether they run in two threads or one after the other, so the weights are bitwise equal; the
    concurrent path really runs (2 intra-op threads) and the thread setting is restored."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        concurrent = _lebm_after_steps(digits, EngineOptions(concurrent_chains=True))
        assert torch.get_num_threads() == 2
        again = _lebm_after_steps(digits, EngineOptions(concurrent_chains=True))
        sequential = _lebm_after_steps(digits, EngineOptions(concurrent_chains=False))
        automatic = _lebm_after_steps(digits, EngineOptions())  # CPU, 2 threads, MLP: concurrent
    finally:
        torch.set_num_threads(n_threads)
    for key, value in concurrent.items():
        assert torch.equal(value, again[key]), key
        assert torch.equal(value, sequential[key]), key
        assert torch.equal(value, automatic[key]), key


def test_lebm_concurrent_option_decides_the_threads(digits: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """concurrent_chains=False never calls run_concurrently; True does (on one CPU thread, too)."""
    import benchbed_lebm.lebm as lebm_module

    calls: list[int] = []

    def counting(first: Any, second: Any) -> Any:
        calls.append(1)
        return run_concurrently(first, second)

    monkeypatch.setattr(lebm_module, "run_concurrently", counting)
    _lebm_after_steps(digits, EngineOptions(concurrent_chains=False), steps=1)
    assert not calls
    _lebm_after_steps(digits, EngineOptions(concurrent_chains=True), steps=1)
    assert calls


def test_lebm_fused_option_changes_no_number_beyond_rounding(digits: Any) -> None:
    """fused on vs off: the hand-written VJPs compute the same gradients as autograd, but with other
    kernels and summation orders, so the last bits may differ and Langevin chains carry them on:
    allclose, not equal."""
    on = _lebm_after_steps(digits, EngineOptions(fused=True, concurrent_chains=False))
    off = _lebm_after_steps(digits, EngineOptions(fused=False, concurrent_chains=False))
    for key, value in on.items():
        torch.testing.assert_close(value, off[key], rtol=1e-4, atol=1e-5, msg=key)


def test_lebm_without_seedable_samplers_runs_sequentially_on_the_global_rng(digits: Any) -> None:
    """A sampler whose sample() takes no generator (a third-party one) gets the global RNG, one chain
    set after the other, even when concurrent chains are asked for; still reproducible."""

    class GlobalRNGSampler:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def sample(self, log_density: Any, z0: torch.Tensor) -> Any:
            return self.inner.sample(log_density, z0)

    class Provider:
        name = "global_rng"

        def __init__(self) -> None:
            self.inner = bound_sampler("lebm", None)

        def __call__(self, role: str, **defaults: Any) -> GlobalRNGSampler:
            assert self.inner is not None
            return GlobalRNGSampler(self.inner(role, **defaults))

    states = []
    for _ in range(2):
        model = build_model("lebm", _LEBM)
        setup_model(model, digits, Budget(1, 50), seed=0, device=torch.device("cpu"), sampler=Provider(),
                    engine=EngineOptions(concurrent_chains=True))
        assert not model._concurrent()
        torch.manual_seed(5)
        model.train_step(Batch(digits.train.x[:50], None, torch.arange(50)), 0)
        states.append(model.state_dict())
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


@pytest.mark.parametrize("channels_last", [False, True])
def test_gemm_transposed_convolutions_equal_the_plain_layers(channels_last: bool) -> None:
    """The 32x32 generator with its first and last layers as GEMMs computes what the official
    nn.ConvTranspose2d layers compute: outputs and all gradients, in either memory layout."""
    torch.manual_seed(0)
    fast, plain = Ref32Generator(12, 3, ngf=8), Ref32Generator(12, 3, ngf=8, gemm_layers=False)
    assert isinstance(fast.net[0], ProjectionConvTranspose2d) and isinstance(fast.net[6], ColumnConvTranspose2d)
    plain.load_state_dict(fast.state_dict())  # same parameters, so checkpoints interchange
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    z, x = torch.randn(5, 12, requires_grad=True), torch.rand(5, 3, 32, 32)
    out_fast, out_plain = fast(z), plain(z)
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-5, atol=1e-6)
    grads_fast = torch.autograd.grad((out_fast - x).pow(2).sum(), [z, *fast.parameters()])
    grads_plain = torch.autograd.grad((out_plain - x).pow(2).sum(), [z, *plain.parameters()])
    for g_fast, g_plain in zip(grads_fast, grads_plain, strict=True):
        torch.testing.assert_close(g_fast, g_plain, rtol=1e-4, atol=1e-5)


def test_gemm_layers_fall_back_outside_their_special_case() -> None:
    """A projection layer given a 2x2 input, or a column layer with output padding, is the parent's."""
    torch.manual_seed(0)
    proj, ref = ProjectionConvTranspose2d(4, 6, 3), torch.nn.ConvTranspose2d(4, 6, 3)
    ref.load_state_dict(proj.state_dict())
    h = torch.randn(2, 4, 2, 2)
    torch.testing.assert_close(proj(h), ref(h))
    col, ref = ColumnConvTranspose2d(4, 2, 3, 2, 1, output_padding=1), torch.nn.ConvTranspose2d(4, 2, 3, 2, 1, 1)
    ref.load_state_dict(col.state_dict())
    torch.testing.assert_close(col(h), ref(h))
