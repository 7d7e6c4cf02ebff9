"""A third-party benchbed plugin: a linear autoencoder with a N(0, I) prior in about 20 lines, and a
latent-space EBM with its own energy network (:mod:`benchbed_example.latent_ebm`), both built from
benchbed's public API only."""

import torch
from torch import nn

from benchbed import ModelSpec, hookimpl
from benchbed.model import LatentModel


class LinearAE(LatentModel):
    capabilities = frozenset({"infer", "reconstruct", "sample"})

    def __init__(self, *, latent_dim: int = 2, lr: float = 1e-2) -> None:
        super().__init__()
        self.latent_dim, self.lr = latent_dim, lr

    def setup(self, ctx) -> None:
        self.shape, d = ctx.info.shape, ctx.info.dim
        self.enc, self.dec = nn.Linear(d, self.latent_dim), nn.Linear(self.latent_dim, d)
        self.optimizers["adam"] = torch.optim.Adam(self.parameters(), lr=self.lr)

    def train_step(self, batch, step):
        loss = ((self.reconstruct(batch.x) - batch.x) ** 2).mean()
        self.optimizers["adam"].zero_grad()
        loss.backward()
        self.optimizers["adam"].step()
        return {"loss": loss.item()}

    def infer(self, x):
        return self.enc(x.flatten(1))

    def reconstruct(self, x):
        return self.dec(self.infer(x)).view(-1, *self.shape)

    def sample(self, n):
        return self.dec(torch.randn(n, self.latent_dim)).view(n, *self.shape)


@hookimpl
def benchbed_register_models(register):
    from benchbed_example.latent_ebm import QuadLEBM

    register(ModelSpec(name="linear_ae", factory=LinearAE, description="linear autoencoder (example plugin)"))
    register(
        ModelSpec(
            name="quad_lebm",
            factory=QuadLEBM,
            test_params={"latent_dim": 2, "hidden": (16,), "energy_hidden": (16,), "prior_steps": 3,
                         "posterior_steps": 3, "partition_samples": 256},
            description="latent EBM whose energy is a Gaussian tilt plus a SiLU MLP (example plugin)",
            tags=("ebm", "generator", "mcmc"),
            uses_sampler=True,
            default_sampler="langevin",
            sampler_roles=("prior", "posterior"),
        )
    )
