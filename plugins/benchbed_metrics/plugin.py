"""Registers the metrics components (the same entry-point path a third-party plugin uses).

Registering is cheap: the metric modules import torch but nothing heavy; pytorch-fid, scipy and the
Inception network are loaded only inside ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable

from benchbed import MetricSpec, hookimpl


@hookimpl
def benchbed_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    from benchbed_metrics.fd_domain import FDDomain, FDRaw
    from benchbed_metrics.fid import FID
    from benchbed_metrics.loglik import ESTIMATOR_TAGS, LogLikelihood, LogLikelihoodBPD
    from benchbed_metrics.loglik import REQUIRES as LOGLIK_REQUIRES
    from benchbed_metrics.outlier import REQUIRES as OUTLIER_REQUIRES
    from benchbed_metrics.outlier import SCORE_TAGS, OutlierAUPRC, OutlierAUROC
    from benchbed_metrics.recon import ReconMSE

    image, vector = frozenset({"image"}), frozenset({"vector"})
    # Small sample counts for the conformance checks (benchbed.testing.check_metric).
    small_loglik = {"n_examples": 16, "k": 16, "ais_chains": 2, "ais_steps": 5, "parzen_samples": 200,
                    "parzen_val": 50, "partition_samples": 256}
    small_outlier = {"classes": (0,), "n_examples": 64}
    specs = [
        MetricSpec(name="recon_mse", factory=ReconMSE,
                   test_params={"n_examples": 64},
                   higher_is_better=False, requires=frozenset({"reconstruct"}),
                   label="Recon MSE", tags=("reconstruction",),
                   description="reconstruction MSE per pixel/coordinate on the test split ([0,1] scale)"),
        MetricSpec(name="fid", factory=FID,
                   test_params={"n_samples": 16, "n_reference": 16, "dims": 64},
                   higher_is_better=False, requires=frozenset({"sample"}), data_kinds=image,
                   label="FID", tags=("sample-quality",),
                   description="pytorch-fid InceptionV3 pool3 Fréchet distance, samples vs test split (local weights)"),
        MetricSpec(name="fd_domain", factory=FDDomain,
                   test_params={"n_samples": 64, "n_reference": 64, "width": 4, "feature_dim": 8, "steps": 5,
                                "batch_size": 32}, higher_is_better=False, requires=frozenset({"sample"}),
                   data_kinds=image, label="FD-domain", tags=("sample-quality",),
                   description="Fréchet distance on features of a small benchbed-trained CNN, samples vs test split"),
        MetricSpec(name="fd_raw", factory=FDRaw,
                   test_params={"n_samples": 64, "n_reference": 64},
                   higher_is_better=False, requires=frozenset({"sample"}),
                   data_kinds=vector, label="FD-raw", tags=("sample-quality",),
                   description="Fréchet distance on raw coordinates, samples vs test split"),
        MetricSpec(name="loglik", factory=LogLikelihood,
                   test_params=small_loglik,
                   higher_is_better=True, label="log-lik (nats)",
                   requires=LOGLIK_REQUIRES,
                   tags=("likelihood",), estimators=ESTIMATOR_TAGS,
                   description="test log-likelihood, nats per example (exact / IWAE / AIS / Parzen, named)"),
        MetricSpec(name="loglik_bpd", factory=LogLikelihoodBPD,
                   test_params=small_loglik,
                   higher_is_better=False, data_kinds=image,
                   requires=LOGLIK_REQUIRES,
                   label="bits/dim", tags=("likelihood",), estimators=ESTIMATOR_TAGS,
                   description="test negative log-likelihood in bits per dimension (8-bit scale), estimator named"),
        MetricSpec(name="outlier_auroc", factory=OutlierAUROC,
                   test_params=small_outlier,
                   higher_is_better=True, needs_labels=True,
                   requires=OUTLIER_REQUIRES,
                   label="Outlier AUROC", tags=("outlier",),
                   estimators=SCORE_TAGS, ranks_across_estimators=True,
                   description="held-out-class outlier AUROC, mean over classes (one training per class)"),
        MetricSpec(name="outlier_auprc", factory=OutlierAUPRC,
                   test_params=small_outlier,
                   higher_is_better=True, needs_labels=True,
                   requires=OUTLIER_REQUIRES,
                   label="Outlier AUPRC", tags=("outlier",),
                   estimators=SCORE_TAGS, ranks_across_estimators=True,
                   description="held-out-class outlier average precision, mean over classes"),
    ]
    for spec in specs:
        register(spec)
