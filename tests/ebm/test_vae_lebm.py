"""vae_lebm: conformance, learning on a tiny budget, the encoder objective and the outlier score."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from benchbed.blocks.gaussian import normal_log_prob, std_normal_log_prob
from benchbed.testing import check_model, fit, load_dataset

FAST = {"g_lr": 1e-3, "i_lr": 1e-3, "e_lr": 3e-4}
GMM_PARAMS = {"latent_dim": 2, "hidden": 64, "energy_width": 32, **FAST}
DIGITS_PARAMS = {"latent_dim": 8, "hidden": 128, "energy_width": 32, **FAST}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dataset", ["gmm8", "digits"])
def test_check_model(dataset: str) -> None:
    """Includes log_joint - log_prior normalised in x by quadrature on gmm8 (the VAE decoder)."""
    check_model("vae_lebm", dataset=dataset)


@pytest.mark.parametrize(("dataset", "params", "steps"), [("gmm8", GMM_PARAMS, 250), ("digits", DIGITS_PARAMS, 150)])
def test_learns(dataset: str, params: dict, steps: int, mmd2: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Decoder-mean samples move to the data: MMD^2 to the test split falls well below the untrained model's;
    reconstructions improve too."""
    bundle = load_dataset(dataset)
    untrained, _ = fit("vae_lebm", bundle, steps=0, batch_size=64, params=params)
    model, history = fit("vae_lebm", bundle, steps=steps, batch_size=64, params=params)
    x = bundle.test.x[:500]
    torch.manual_seed(0)
    with torch.no_grad():
        before, after = mmd2(untrained.sample(500), x), mmd2(model.sample(500), x)
        rec0 = float(((untrained.reconstruct(x) - x) ** 2).mean())
        rec = float(((model.reconstruct(x) - x) ** 2).mean())
    assert after < 0.3 * before, (after, before)
    assert rec < 0.5 * rec0, (rec, rec0)
    assert history[-1]["e_f"] > history[-1]["e_t"]  # the EBM ranks data pairs below generated pairs


def test_encoder_loss_is_the_triangle_part() -> None:
    """With lam = 1 the entropy terms of lam * KL_mc and mean[-log q] cancel draw by draw, so the encoder
    loss is rec - log N(z_q) - E(x, z_q) (the phi-part of KL(Q||P) - KL(Q||Pi) up to constants)."""
    bundle = load_dataset("digits")
    model, history = fit("vae_lebm", bundle, steps=2, batch_size=32, params={"latent_dim": 4, "hidden": 32})
    x_m = model.scale.to_model(bundle.train.x[:16])
    torch.manual_seed(0)
    with torch.no_grad():
        mu, logvar = model._q(x_m)
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn_like(mu)
        rec = model._rec(x_m, z).mean()
        neg_log_q = -normal_log_prob(z, mu, std).mean()
        kl_mc = -neg_log_q - std_normal_log_prob(z).mean()
        energy = model.energy(x_m, z).mean()
        official = (rec + kl_mc) - (energy - neg_log_q)  # lamb (rec + KL) - (E_T + (-log_q_z)), log_q_z = NLL
        reduced = rec - std_normal_log_prob(z).mean() - energy
    assert torch.allclose(official, reduced, atol=1e-4)
    assert set(history[-1]) >= {"loss_e", "e_t", "e_f", "rec", "kl_mc", "loss_i", "loss_g"}


def test_anomaly_score_is_the_energy_at_the_encoder_mean() -> None:
    bundle = load_dataset("digits")
    model, _ = fit("vae_lebm", bundle, steps=2, batch_size=32, params={"latent_dim": 4, "hidden": 32})
    x = bundle.test.x[:16]
    with torch.no_grad():
        x_m = 2 * x - 1
        expected = torch.nn.functional.softplus(model.ebm(x_m, model.infer(x)))
        assert torch.allclose(model.anomaly_score(x), expected)


def test_bad_energy_form_is_named() -> None:
    from benchbed_ebm.vae_lebm import VAELEBM

    with pytest.raises(ValueError, match="energy_form"):
        VAELEBM(energy_form="tanh")  # type: ignore[arg-type]
