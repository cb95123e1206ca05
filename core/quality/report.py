"""A quality evaluation's result: one :class:`Cell` per method and metric (per-image values, curves), and the
report over them: the table with confidence intervals, the per-image rows (CSV) and the ranking with its reasons."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.quality import randomisation
from core.quality.registry import get_metric


@dataclass
class Cell:
    method: str
    metric: str
    values: np.ndarray
    curves: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why the metric does not apply
    seconds: float = 0.0  # time of the metric itself (the maps excluded)

    @property
    def mean(self) -> float:
        v = self.values[np.isfinite(self.values)]
        return float(v.mean()) if len(v) else math.nan

    @property
    def ci95(self) -> float:
        """Half-width of the normal-approximation 95% confidence interval of the mean."""
        v = self.values[np.isfinite(self.values)]
        return float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan

    @property
    def n(self) -> int:
        return int(np.isfinite(self.values).sum())


@dataclass
class QualityReport:
    model_id: str
    dataset: str
    split: str
    indices: np.ndarray
    cells: list[Cell]
    map_seconds: dict[str, float] = field(default_factory=dict)  # per method, maps computed in this call

    def cell(self, method: str, metric: str) -> Cell | None:
        return next((c for c in self.cells if c.method == method and c.metric == metric), None)

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for c in self.cells:
            m = get_metric(c.metric)
            rows.append({"method": c.method, "metric": c.metric, "category": m.category,
                         "higher_is_better": m.higher_is_better, "mean": c.mean, "ci95": c.ci95, "n": c.n,
                         "random_baseline": (float(np.nanmean(c.extras["random_baseline"]))
                                             if "random_baseline" in c.extras else None),
                         "skipped": c.skipped})
        return rows

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per image, method and metric (the CSV export)."""
        return [{"image": int(i), "method": c.method, "metric": c.metric, "value": float(v)}
                for c in self.cells if c.skipped is None for i, v in zip(self.indices, c.values)]

    def sanity_failures(self) -> list[str]:
        return [c.method for c in self.cells if c.metric == "randomisation" and c.skipped is None
                and c.mean >= randomisation.FAIL_RHO]

    def ranking(self) -> list[tuple[str, float, str]]:
        """Methods ordered by their mean rank over the metrics that apply (1 = best), each with the reasoning
        in plain words: where it did best and worst, and whether it failed the sanity check."""
        methods = list(dict.fromkeys(c.method for c in self.cells))
        metrics = list(dict.fromkeys(c.metric for c in self.cells))
        ranks: dict[str, dict[str, float]] = {m: {} for m in methods}
        for metric in metrics:
            scored = [(c.method, c.mean) for c in self.cells if c.metric == metric and c.skipped is None
                      and math.isfinite(c.mean)]
            if len(scored) < 2:
                continue
            sign = -1 if get_metric(metric).higher_is_better else 1
            order = sorted(scored, key=lambda mv: sign * mv[1])
            for r, (method, _) in enumerate(order, 1):
                ranks[method][metric] = r
        failed = set(self.sanity_failures())
        out = []
        for m in methods:
            if not ranks[m]:
                continue
            mean_rank = float(np.mean(list(ranks[m].values())))
            best = min(ranks[m], key=ranks[m].get)
            worst = max(ranks[m], key=ranks[m].get)
            if ranks[m][best] == ranks[m][worst]:
                why = f"rank {ranks[m][best]} on every one of {len(ranks[m])} metrics"
            else:
                why = (f"mean rank {mean_rank:.1f} over {len(ranks[m])} metrics; best on {get_metric(best).title} "
                       f"({self.cell(m, best).mean:.3f}, rank {ranks[m][best]}), weakest on {get_metric(worst).title} "
                       f"({self.cell(m, worst).mean:.3f}, rank {ranks[m][worst]})")
            if m in failed:
                why += f"; FAILS the randomisation sanity check (rank correlation {self.cell(m, 'randomisation').mean:.2f} "
                why += "with the randomised model's map): its map barely depends on what the model learned"
                mean_rank += len(methods)  # a method that fails the sanity check goes below every one that passes
            out.append((m, mean_rank, why))
        return sorted(out, key=lambda t: t[1])
