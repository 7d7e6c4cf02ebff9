"""benchbed built-in plugin: latent samplers.

* :mod:`benchbed_samplers.langevin`: ``Langevin``, short-run (unadjusted) Langevin; ``persistent``
  chains are kept by the model, not the sampler.
* :mod:`benchbed_samplers.hmc`: ``HMC`` with dual-averaging step sizes.
* :mod:`benchbed_samplers.short_run`: ``ShortRun`` (SRI), an ``nn.Module`` whose step size is learned
  with ``learn(log_density, z0)`` by minimising an estimate of ``KL(q_s || p(z|x))``.

Every ``sample(log_density, z0, **overrides)`` takes ``z0`` [B, *Z] and ``log_density: z -> [B]``,
returns ``SampleResult(z, diagnostics)`` and works under ``torch.no_grad()`` and
``torch.inference_mode()``.  The transitions themselves (one Langevin update, one Metropolis-corrected
HMC transition) are public functions of :mod:`benchbed.blocks.transitions`, for any other loop.
Nothing is imported here, so registering stays cheap.
"""
