"""benchbed built-in plugin: moment matching (the GMMN family) and the MMD metric.

The kernels and MMD^2 estimators are public toolkit code in :mod:`benchbed.blocks.mmd`.  Modules:

* :mod:`~benchbed_mmd.kernels`: the GMMN kernel scales (official MNIST variances, scaled by dimension).
* :mod:`~benchbed_mmd.mmd`: the GMMN training loss ``sqrt(MMD^2)``.
* :mod:`~benchbed_mmd.gmmn`, :mod:`~benchbed_mmd.gmmn_ae`, :mod:`~benchbed_mmd.jgmmn`: the models.
* :mod:`~benchbed_mmd.metric`: the ``mmd`` metric.
* :mod:`~benchbed_mmd.nets`, :mod:`~benchbed_mmd.priors`: shared model pieces and the mixture prior.
"""
