"""Explanation quality: metrics behind one registry (one file per metric), evaluated batched over a sample.

    from core.quality import evaluate, list_metrics
    report = evaluate(model, ds, ["grad_cam", "saliency"], ["deletion", "pointing_game"], n=100, seed=0)
    report.table()      # method x metric: mean, 95% CI, n
    report.rows         # one row per image, method and metric

The run lives in :mod:`.evaluation`, its result and ranking in :mod:`.report`, the per-cell cache in a model's
``quality/`` folder in :mod:`.store`, the metric contract in :mod:`.base` and the registry in :mod:`.registry`.
"""
# One file per metric; importing registers it, and the import order is the order of every list and table.
from core.quality import deletion, insertion, road  # noqa: F401,I001  (faithfulness)
from core.quality import pointing_game, relevance_mass, marker_mass  # noqa: F401,I001  (localisation)
from core.quality import max_sensitivity, run_agreement  # noqa: F401,I001  (stability)
from core.quality import randomisation, sparseness  # noqa: F401,I001  (sanity, complexity)
from core.quality.base import Metric, MetricResult, QualityInputs
from core.quality.evaluation import StageProgress, evaluate, sample_indices
from core.quality.registry import CATEGORIES, METRICS, get_metric, list_metrics, register
from core.quality.report import Cell, QualityReport
from core.quality.store import QUALITY_DIR, known_numbers

__all__ = ["CATEGORIES", "Cell", "METRICS", "Metric", "MetricResult", "QUALITY_DIR", "QualityInputs", "QualityReport",
           "StageProgress", "evaluate", "get_metric", "known_numbers", "list_metrics", "register", "sample_indices"]
