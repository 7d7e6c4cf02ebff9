"""The GMMN family's kernel scales (the kernel itself and the median heuristic are in
:mod:`benchbed.blocks.mmd`).

The GMMN kernel is ``k(x, y) = sum_q exp(-||x - y||^2 / (2 v_q))`` with ``v_q`` a **variance**
(squared bandwidth).  The official code (``yujiali/gmmn``) calls it ``sigma`` but computes
``exp(-d^2 / (2 sigma))``; here the parameter is named ``variances`` so that nobody reads it as a
bandwidth.
"""

from __future__ import annotations

#: Variances of the official MNIST input-space GMMN (``train.py: mnist_mmd_input_space``), for
#: 784-dimensional data in [0, 1].
GMMN_MNIST_VARIANCES: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)


def dim_scaled_gmmn_variances(dim: int, reference_dim: int = 784) -> tuple[float, ...]:
    """The official MNIST variances scaled by ``dim / reference_dim``.

    Squared distances between [0, 1] images grow linearly with the number of pixels, so this keeps
    the kernels in the same relation to the data as the official 784-pixel setting (and equals
    it for MNIST).
    """
    return tuple(v * dim / reference_dim for v in GMMN_MNIST_VARIANCES)
