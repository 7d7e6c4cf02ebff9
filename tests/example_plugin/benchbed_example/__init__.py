"""A third-party benchbed model in about 20 lines: a linear autoencoder with a N(0, I) prior."""

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
    register(ModelSpec(name="linear_ae", factory=LinearAE, description="linear autoencoder (example plugin)"))
