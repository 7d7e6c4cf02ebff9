"""benchbed built-in plugin: moment matching (the GMMN family) and the MMD metric.

Modules:

* :mod:`~benchbed_mmd.kernels`: multi-scale Gaussian kernels (variances, not bandwidths), median heuristic.
* :mod:`~benchbed_mmd.mmd`: MMD^2 (biased / unbiased, dense / chunked, joint product kernel), sqrt loss.
  Other packages may import ``benchbed_mmd.mmd.mmd2(x, y, variances=..., unbiased=False, chunk_size=None)``.
* :mod:`~benchbed_mmd.gmmn`, :mod:`~benchbed_mmd.gmmn_ae`, :mod:`~benchbed_mmd.jgmmn`: the models.
* :mod:`~benchbed_mmd.metric`: the ``mmd`` metric.
* :mod:`~benchbed_mmd.nets`, :mod:`~benchbed_mmd.priors`: shared network pieces and the mixture prior.
"""
