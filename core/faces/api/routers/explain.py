"""``/explain``: maps of one image by several methods, synchronously (within a time limit) or as a job."""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from core import config, errors
from core.cancel import CancelToken
from core.faces.api.http_errors import SyncTimeout
from core.faces.api.limits import GUARDED
from core.faces.api.routers.jobs import job_info
from core.faces.api.schemas import ExplainResponse, JobInfo, MethodResult, encode_array
from core.faces.api.services import Services, jsonable, services

router = APIRouter(tags=["explain"], dependencies=GUARDED)

#: method names one request may give (repeats included); each is computed once
MAX_METHODS = 64


def checked_request(model, methods: str, params: str) -> tuple[list[str], dict]:
    """The method names and their parameters, every name, parameter and applicability checked before any work."""
    from core.explainers import get_method
    from core.explainers.engine import resolve_params

    given_names = [s.strip() for s in methods.split(",") if s.strip()]
    if not given_names:
        raise errors.ParameterError("name at least one method (GET /methods lists them)")
    if len(given_names) > MAX_METHODS:
        raise errors.ParameterError(f"{len(given_names)} method names; a request takes at most {MAX_METHODS}")
    names = list(dict.fromkeys(given_names))  # each method once, in the order first named
    try:
        given = json.loads(params)
    except RecursionError:
        raise errors.ParameterError("params is nested too deeply") from None
    except ValueError as exc:
        raise errors.ParameterError(f"params is not valid JSON: {exc}") from None
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        raise errors.ParameterError('params must be a JSON object {"method": {"name": value}}')
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise errors.ParameterError(f"params given for methods not requested: {', '.join(unknown)}")
    for n in names:
        cls = get_method(n)
        resolve_params(n, model, **given.get(n, {}))
        why = cls.unavailable(model)
        if why:
            raise errors.NotApplicableError(f"{cls.title} does not apply to this model: {why}")
    return names, given


@router.post("/explain", response_model=ExplainResponse | JobInfo,
             responses={202: {"model": JobInfo}})
async def explain(model: str = Form(...), methods: str = Form("grad_cam", description="comma-separated method names"),
                  params: str = Form("{}", description='JSON: {"method": {"name": value}}'),
                  target: int | None = Form(None, description="class index (default: the predicted class)"),
                  image: UploadFile | None = File(None), dataset: str | None = Form(None),
                  split: Literal["train", "val", "test"] = Form("test"), index: int | None = Form(None),
                  npy: bool = Form(False, description="also return each map as .npy bytes (base64)"),
                  view: Literal["auto", "signed", "magnitude"] = Form(
                      "auto", description="the overlays' colour rule: auto (each method's declared rule), signed or "
                                          "magnitude; unsigned maps are always magnitude. Each result says which it drew"),
                  run_as_job: bool = Form(False, alias="async",
                                          description="run as a job: 202 with its id; GET /jobs/{id} for the result"),
                  svc: Services = Depends(services)):
    limit = svc.limits.sync_seconds
    deadline = time.monotonic() + limit
    upload = await svc.upload(image)

    def prepare():
        m, card = svc.models.get(model)
        names, given = checked_request(m, methods, params)
        if target is not None and not 0 <= target < len(card.classes):
            raise errors.ParameterError(f"target must be a class index in [0, {len(card.classes) - 1}], got {target}")
        return m, card, names, given, svc.read_image(upload, card, dataset, split, index)

    m, card, names, given, (x, display, ref, _) = await svc.run(prepare, deadline, svc.decode)

    def compute(progress, token):
        return explanation(model, m, card, x, display, ref, names, given, target, npy, progress, token, view)

    if run_as_job:
        def work(progress, token):  # stored as JSON: the result leaves memory once written
            return svc.computed(lambda: compute(progress, token), float("inf")).model_dump(mode="json")

        job = svc.jobs.submit(work, kind="explain", label=f"{model}: {', '.join(names)}", meta={"model": model})
        return JSONResponse(job_info(svc, job).model_dump(mode="json"), status_code=202)
    token = CancelToken()
    timer = threading.Timer(limit, token.cancel)
    timer.start()
    try:
        # serialised on the compute thread: a large answer rendered on the event loop would hold up /health
        return await svc.run(lambda: JSONResponse(compute(None, token).model_dump(mode="json")), deadline)
    except errors.Cancelled:
        raise SyncTimeout(f"the explanation took longer than the {limit:g} s limit for synchronous calls and was "
                          "stopped; send async=true to run it as a job") from None
    finally:
        timer.cancel()


def explanation(model_id, model, card, x, display, ref, names, given, target, npy, progress, token,
                view: str = "auto") -> ExplainResponse:
    """Every requested method's map of one image, with overlays drawn by the one drawing path (in ``view``'s rule)
    and the quality numbers already known."""
    from core.explainers import explain_batch
    from core.modelling.prediction import predict_proba
    from core.modelling.trust import model_warnings
    from core.present.render import draw_explanation, png_bytes
    from core.quality import known_numbers

    proba = predict_proba(model, x[None])[0]
    pred = int(proba.argmax())
    total = [0] * len(names)
    results = []
    for k, name in enumerate(names):
        def step(done, t, k=k):
            total[k] = t
            if progress:
                progress(sum(total[:k]) + done, sum(total[:k]) + t)

        e = explain_batch(model, x[None], name, targets=pred if target is None else target, progress=step,
                          cancel=token, **given.get(name, {}))[0]
        buf = None
        if npy:
            bio = io.BytesIO()
            np.save(bio, e.attribution)
            buf = base64.b64encode(bio.getvalue()).decode()
        drawn = draw_explanation(display, e, view)
        quality = known_numbers(config.models_dir() / model_id / "quality", name)
        results.append(MethodResult(
            method=name, title=e.title, target=e.target, target_name=card.classes[e.target], params=jsonable(e.params),
            seconds=e.seconds, signed=e.signed, flat=e.flat, extras=jsonable(e.extras),
            attribution=encode_array(e.attribution), npy_base64=buf,
            overlay_png_base64=base64.b64encode(png_bytes(drawn.image)).decode(), rule=drawn.rule,
            quality={m: {"mean": v, "n": n} for m, (v, n) in quality.items()}))
    return ExplainResponse(model=model_id, image=ref, prediction=pred, prediction_name=card.classes[pred],
                           results=results, warnings=model_warnings(card))
