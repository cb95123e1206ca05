"""``/predict``: the model's probabilities for an uploaded image or a dataset image, with its trust checks."""
from __future__ import annotations

import time
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from core import config
from core.faces.api.limits import GUARDED
from core.faces.api.schemas import Ood, PredictResponse, TopK
from core.faces.api.services import Services, services

router = APIRouter(tags=["predict"], dependencies=GUARDED)


@router.post("/predict", response_model=PredictResponse)
async def predict(model: str = Form(..., description="model id (GET /models)"),
                  image: UploadFile | None = File(None, description="an image file (PNG, JPEG, TIFF, BMP, WebP)"),
                  dataset: str | None = Form(None), split: Literal["train", "val", "test"] = Form("test"),
                  index: int | None = Form(None), top_k: int = Form(5, ge=1, le=1000),
                  svc: Services = Depends(services)) -> JSONResponse:
    from core.modelling.prediction import predict_proba
    from core.modelling.trust import ood_check

    deadline = time.monotonic() + svc.limits.sync_seconds
    upload = await svc.upload(image)

    def prepare():
        m, card = svc.models.get(model)
        return m, card, svc.read_image(upload, card, dataset, split, index)

    m, card, (x, _, ref, _) = await svc.run(prepare, deadline, svc.decode)

    def work() -> JSONResponse:  # serialised here, on the compute thread, not on the event loop
        proba = predict_proba(m, x[None])[0]
        ood = ood_check(m, config.models_dir() / model, x[None]) if upload is not None else None
        return JSONResponse(answer(model, card, ref, proba, ood, top_k).model_dump(mode="json"))

    return await svc.run(work, deadline)


def answer(model: str, card, ref: dict, proba: np.ndarray, ood, top_k: int) -> PredictResponse:
    from core.modelling.trust import model_warnings, saturated

    top = [int(c) for c in np.argsort(-proba)[:top_k]]
    o = ood[0] if ood else None
    return PredictResponse(
        model=model, image=ref, prediction=top[0], prediction_name=card.classes[top[0]],
        probabilities=[float(p) for p in proba],
        top_k=[TopK(index=c, name=card.classes[c], probability=float(proba[c])) for c in top],
        ood=None if o is None else Ood(score=o.score, threshold=o.threshold, flagged=o.flagged, message=o.message),
        saturated=saturated(float(proba.max())), warnings=model_warnings(card))
