"""Which registered dataset an imported model's classes are those of (by name, in any order)."""
from __future__ import annotations

from typing import Sequence

from core.datasets import get_source, list_datasets
from core.modelling.cards import class_mapping

#: the photos-only dataset that lists every imported model (:mod:`core.datasets.imported_source`)
IMPORTED = "imported"


def matching_datasets(classes: Sequence[str]) -> list[str]:
    """Registered datasets whose class names are ``classes`` (case, spaces, ``-`` and ``_`` ignored; any order)."""
    out = []
    for name in list_datasets(labelled=True):
        known = get_source(name).info.classes
        if known and class_mapping(classes, known) is not None:
            out.append(name)
    return out


def dataset_for(classes: Sequence[str]) -> tuple[str, str]:
    """The dataset a model with these classes belongs to (the first that matches, else :data:`IMPORTED`), and the
    class-order mapping from that dataset to the model ("" when the order is the same or nothing matches)."""
    found = matching_datasets(classes)
    if not found:
        return IMPORTED, ""
    data = get_source(found[0]).info.classes
    order = class_mapping(classes, data)
    if order == list(range(len(order))):
        return found[0], ""
    return found[0], "; ".join(f"{d} → {classes[j]}" for d, j in zip(data, order)) if order else ""
