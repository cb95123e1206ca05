"""When a prediction should not be believed: model-level flags (near-chance, a class the model rarely
recognises), input-level flags (out of distribution) and the meaning of a saturated probability.

Every page, the report and the CLI take their warnings from here, so they say the same thing with the same
numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.modelling.cards import ModelCard

#: a model is "near chance" when its test balanced accuracy is less than this far above 1 / classes
NEAR_CHANCE_MARGIN = 0.10
#: a class is "rarely recognised" when its test recall is below this
LOW_RECALL = 0.5
#: probabilities shown as 100.0% (or 0.0%) at one decimal
SATURATED = 0.9995

SATURATION_NOTE = ("100.0% is a softmax output, not a certainty: it says this class's score dwarfs the others "
                   "for this input. Models give such values to images unlike anything they were trained on too, "
                   "and to wrong answers; see the model's calibration (ECE) on the Performance page.")


def model_warnings(card: ModelCard, metrics: dict | None = None) -> list[str]:
    """Plain-language reasons not to trust this model's predictions, each with its numbers (empty: none)."""
    m = metrics if metrics is not None else card.metrics
    out: list[str] = []
    if not m and card.from_torchvision:  # ImageNet weights: accuracy published, shown with it (if the file is it)
        from core.modelling.pretrained import unpublished_note

        note = unpublished_note(card)
        return [note] if note else out
    if not m or "per_class" not in m:
        if card.imported:
            command = f"python -m core evaluate --model {card.id}"
            how = (f"`{command} --dataset folder --data-dir FOLDER` on a labelled folder named by its classes"
                   if card.dataset == "imported" else f"`{command}` on {card.dataset}'s test split")
            return [f"this model was imported from {card.source.get('name', 'a file')} and has not been evaluated here: "
                    f"how good it is is unknown (run {how})"]
        return ["this model has no test metrics: how good it is is unknown (run `python -m core evaluate`)"]
    k = len(card.classes)
    chance = 1.0 / k
    bal = m.get("balanced_accuracy")
    if bal is None:  # cards from before balanced accuracy was recorded
        recalls = [v["recall"] for v in m["per_class"].values() if v.get("support", 1) > 0]
        bal = float(np.mean(recalls)) if recalls else None
    if bal is not None and bal < chance + NEAR_CHANCE_MARGIN:
        out.append(f"the model is near chance level: balanced accuracy {bal:.1%} on {m.get('n', '?')} test images, "
                   f"where guessing scores {chance:.1%} ({k} classes); its predictions and maps mean little")
    low = [(c, v["recall"], int(v.get("support", 0))) for c, v in m["per_class"].items()
           if v.get("support", 1) > 0 and v["recall"] < LOW_RECALL]
    for c, r, n in low:
        out.append(f"class {c!r} is rarely recognised: test recall {r:.1%} ({round(r * n)} of {n} images)")
    return out


def saturated(p: float) -> bool:
    return p >= SATURATED


@dataclass
class OodResult:
    score: float
    threshold: float
    flagged: bool

    @property
    def message(self) -> str:
        if not self.flagged:
            return f"in distribution: score {self.score:.1f} (threshold {self.threshold:.1f})"
        return (f"This image is unlike the images the model was trained on (out-of-distribution score "
                f"{self.score:.1f}, above the {self.threshold:.1f} that 95% of its validation images stay under). "
                f"Its prediction and explanations may mean nothing.")


def ood_results(detector, model, images) -> list[OodResult]:
    """OOD verdicts for a batch of images from a model's loaded statistics."""
    scores, flags = detector.flags(model, images)
    return [OodResult(float(s), detector.threshold, bool(f)) for s, f in zip(scores, flags)]


def ood_check(model, model_path: str | Path, images) -> list[OodResult] | None:
    """OOD results for a batch of images, or None when the model has no OOD statistics yet."""
    from core.modelling.ood import OodDetector

    det = OodDetector.load(Path(model_path))
    return None if det is None else ood_results(det, model, images)
