"""The speed paths change no numbers: fused log-densities equal the autograd closures (value and
gradient), and LEBM's side-by-side chains are reproducible and leave the thread setting unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchbed.contracts import Batch, Budget, DataBundle, DatasetInfo, Split
from benchbed.testing import bound_sampler, build_model, fit
from benchbed.training import setup_model
from benchbed_generators.dynamics import run_concurrently
from benchbed_generators.fused import fused_log_density
from benchbed_lebm.nets import ColumnConvTranspose2d, ProjectionConvTranspose2d, Ref32Generator


def _value_and_grad(log_density: Any, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.clone().requires_grad_(True)
    value = log_density(z)
    (grad,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), grad


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
    fused, _ = fit(name, bundle, steps=0, params={**params, "fused": True})
    plain = build_model(name, {**params, "fused": False})
    setup_model(plain, bundle, Budget(1, 10), seed=0, device=torch.device("cpu"), sampler=bound_sampler(name, None))
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


def test_run_concurrently_returns_both_results_and_restores_threads() -> None:
    torch.set_num_threads(2)
    try:
        a = torch.randn(50, 50)
        first, second = run_concurrently(lambda: (a @ a).sum(), lambda: (a.t() @ a).sum())
        assert torch.allclose(first, (a @ a).sum()) and torch.allclose(second, (a.t() @ a).sum())
        assert torch.get_num_threads() == 2

        def boom() -> None:
            raise RuntimeError("chain failed")

        with pytest.raises(RuntimeError, match="chain failed"):
            run_concurrently(boom, lambda: a.sum())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_lebm_parallel_chains_are_reproducible(digits: Any) -> None:
    """Two threads, each chain with its own generator seeded from the global RNG: same seed, same
    weights; and the side-by-side path really runs (2 intra-op threads allowed)."""
    params = {"latent_dim": 4, "hidden": (32, 32), "energy_hidden": (16, 16), "prior_steps": 5, "posterior_steps": 5}
    batch = Batch(digits.train.x[:50], None, torch.arange(50))
    torch.set_num_threads(2)
    try:
        states = []
        for _ in range(2):
            model, _ = fit("lebm", digits, steps=0, params=params)
            torch.manual_seed(3)
            for step in range(3):
                model.train_step(batch, step)
            states.append(model.state_dict())
        sequential, _ = fit("lebm", digits, steps=0, params={**params, "parallel_chains": False})
        torch.manual_seed(3)
        for step in range(3):
            sequential.train_step(batch, step)
    finally:
        torch.set_num_threads(1)
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    # The parallel path draws its chains from other generators than the sequential one.
    assert any(not torch.equal(v, sequential.state_dict()[k]) for k, v in states[0].items())


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
