"""Relevance mass on the spurious marker of ``shapes_spurious``: does the map reveal the shortcut?"""
from __future__ import annotations

from core.quality.base import QualityInputs
from core.quality.registry import register
from core.quality.relevance_mass import RelevanceMass


@register
class MarkerMass(RelevanceMass):
    name = "marker_mass"
    title = "Relevance mass on the spurious marker"
    needs_masks = False
    needs_marker = True
    description = ("Fraction of the positive attribution on the corner marker of shapes_spurious. High: the map "
                   "reveals that the model looks at the shortcut (a virtue in a map, a fault in the model).")
    paper = "Lapuschkin et al., Unmasking Clever Hans predictors, Nature Communications 2019"

    @staticmethod
    def region(inp: QualityInputs):
        return inp.marker_masks
