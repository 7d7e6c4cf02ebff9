"""A convenience base class for models: capabilities, optimisers, checkpointing, parameter count.

Plugins may implement :class:`benchbed.contracts.Model` directly; this base class only removes
boilerplate.  It holds no model code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from benchbed.contracts import Batch, SetupContext


class LatentModel(nn.Module):
    """Base class: subclasses set ``capabilities``, build networks in ``setup`` and put their
    optimisers in ``self.optimizers`` so :meth:`checkpoint` captures them.

    Subclasses keep hyperparameters as constructor keyword arguments and do no work in
    ``__init__`` beyond storing them (the signature is the schema).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.device = torch.device("cpu")

    def setup(self, ctx: SetupContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement setup()")

    def train_step(self, batch: Batch, step: int) -> Mapping[str, float]:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement train_step()")

    def extra_state(self) -> dict[str, Any]:
        """State outside parameters, buffers and optimisers (override when there is some)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_state`."""

    def checkpoint(self) -> dict[str, Any]:
        """Parameters, buffers, optimiser states and :meth:`extra_state`."""
        return {
            "module": self.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "extra": self.extra_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`checkpoint` into a model on which ``setup`` has run."""
        self.load_state_dict(state["module"])
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        self.load_extra_state(state.get("extra", {}))

    def n_parameters(self) -> int:
        """Trainable parameters (learned sampler step sizes included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
