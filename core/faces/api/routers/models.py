"""``/models``: the trained models and torchvision's ImageNet classifiers, with their cards and trust warnings."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from core.faces.api.limits import GUARDED
from core.faces.api.schemas import ModelDetail, ModelSummary
from core.faces.api.services import jsonable, model_card

router = APIRouter(tags=["models"], dependencies=GUARDED)


def all_cards():
    from core.modelling.checkpoints import list_models
    from core.modelling.pretrained import IMAGENET

    return list_models() + list_models(dataset=IMAGENET)


def summary(path: Path, card) -> dict[str, Any]:
    from core.modelling.trust import model_warnings

    return dict(id=card.id, dataset=card.dataset, arch=card.arch, classes=len(card.classes), input_size=card.input_size,
                channels=card.channels, source="torchvision" if card.from_torchvision else "trained",
                test_accuracy=card.metrics.get("accuracy"),
                published_top1=(card.training.get("published_imagenet_1k") or {}).get("acc@1"),
                weights_present=bool(card.weights_sha256), ood_statistics=(Path(path) / "ood.npz").is_file(),
                published_weights=card.training.get("published_file"), warnings=model_warnings(card))


@router.get("/models", response_model=list[ModelSummary])
def list_models() -> list[ModelSummary]:
    return [ModelSummary(**summary(p, c)) for p, c in all_cards()]


@router.get("/models/{model_id}", response_model=ModelDetail)
def model_detail(model_id: str) -> ModelDetail:
    path, card = model_card(model_id)
    metrics = dict(card.metrics)
    saved = path / "metrics.json"
    if saved.is_file():
        try:
            metrics = {**metrics, **json.loads(saved.read_text())}
        except (OSError, ValueError):
            pass
    return ModelDetail(**summary(path, card), card=card.to_dict(), metrics=jsonable(metrics))
