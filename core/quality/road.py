"""ROAD from pytorch-grad-cam: removal by noisy linear imputation, which avoids the artefacts a constant
replacement creates."""
from __future__ import annotations

import numpy as np

from core.quality.base import Metric, MetricResult, QualityInputs
from core.quality.registry import register


@register
class Road(Metric):
    """pytorch-grad-cam's ROAD: removal by noisy linear imputation, which avoids the out-of-distribution
    artefacts a constant replacement creates; (LeRF - MoRF) / 2 averaged over percentiles. Its imputer draws
    from torch's global RNG, so it runs seeded with the caller's RNG state restored."""

    name = "road"
    title = "ROAD (combined)"
    category = "faithfulness"
    description = ("Remove and Debias (ROAD): impute removed pixels from their neighbours; half the difference "
                   "between removing the least and the most relevant pixels. High: faithful.")
    paper = "Rong et al., A Consistent and Efficient Evaluation Strategy for Attribution Methods, ICML 2022"
    percentiles = (20, 40, 60, 80)

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        from pytorch_grad_cam.metrics.road import ROADCombined
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

        from core.explainers import seeding
        from core.modelling.prediction import model_device

        road = ROADCombined(percentiles=list(self.percentiles))
        values = []
        dev = model_device(inp.model)
        for i in range(len(inp.images)):  # the imputer solves one sparse system per image anyway
            if inp.cancel is not None and inp.cancel.cancelled:
                from core.errors import Cancelled

                raise Cancelled("quality evaluation was cancelled")
            with seeding.seeded(int(inp.params.get("seed", 0)) + i):
                v = road(inp.images[i:i + 1].to(dev), inp.maps[i:i + 1].astype(np.float32),
                         [ClassifierOutputSoftmaxTarget(int(inp.targets[i]))], inp.model)
            values.append(float(np.asarray(v).reshape(-1)[0]))
            if inp.progress:
                inp.progress(i + 1, len(inp.images))
        return MetricResult(np.asarray(values))
