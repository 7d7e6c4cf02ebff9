"""The public toolkit for plugin authors: reusable building blocks of latent-variable models.

benchbed itself holds no model; these are the pieces the built-in model plugins are made of, and a
third-party plugin may use them the same way (``from benchbed.blocks.nets import mlp``).  A model
plugin imports only benchbed's public API, never another plugin.

Modules:

* :mod:`benchbed.blocks.scaling` -- :class:`~benchbed.blocks.scaling.DataScale`, the affine map
  between the data scale and a model's working scale, with its log-Jacobian.
* :mod:`benchbed.blocks.gaussian` -- normalised Gaussian log-densities (standard normal, diagonal
  Gaussian, Gaussian observation log-likelihood) and the KL to N(0, I).
* :mod:`benchbed.blocks.nets` -- MLPs, small conv generators/encoders and the ``arch`` rule.
* :mod:`benchbed.blocks.chains` -- running samplers with frozen weights, per-chain
  ``torch.Generator`` support, and two chain sets side by side.
* :mod:`benchbed.blocks.fused` -- tape-free value-and-gradient of MLP log-densities for samplers.
* :mod:`benchbed.blocks.latent` -- :class:`~benchbed.blocks.latent.DynamicsGenerator`, the base
  class of generators with Gaussian noise and posterior dynamics.
* :mod:`benchbed.blocks.transitions` -- Markov-chain transition kernels for samplers.
* :mod:`benchbed.blocks.mmd` -- kernel two-sample statistics.
* :mod:`benchbed.blocks.partition` -- importance-sampled log-normalisers with their effective
  sample size (an EBM prior's ``log_partition``).

Stability promise: the names in each module's ``__all__`` are public.  None is removed or changed
incompatibly without a ``DeprecationWarning`` for at least one minor release first.  Anything else
(names with a leading underscore, or absent from ``__all__``) may change at any time.
"""

from __future__ import annotations

__all__ = ["chains", "fused", "gaussian", "latent", "mmd", "nets", "partition", "scaling", "transitions"]
