"""``/models``: the trained models, the imported ones and torchvision's ImageNet classifiers, with their cards and
trust warnings; ``POST /models`` imports a model made elsewhere (:mod:`core.importers`, as ``python -m core
import-model`` does)."""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from core import config, errors
from core.faces.api.http_errors import CheckFailed, ImportRefused, ModelExists, ModelTooLarge
from core.faces.api.limits import GUARDED, mib
from core.faces.api.schemas import CheckInfo, ImportResponse, ModelDetail, ModelSummary
from core.faces.api.services import Services, jsonable, model_card, services
from core.importers import SETTINGS
from core.importers.settings import Setting
from core.importers.uploads import UploadTooLarge

router = APIRouter(tags=["models"], dependencies=GUARDED)

#: check images one import may upload
MAX_CHECK_IMAGES = 64
#: bytes read from the uploaded model at a time
CHUNK = 1 << 20


def all_cards():
    from core.modelling.checkpoints import list_models
    from core.modelling.pretrained import IMAGENET

    return list_models() + list_models(dataset=IMAGENET)


def summary(path: Path, card) -> dict[str, Any]:
    from core.modelling.trust import model_warnings

    imported = card.imported
    return dict(id=card.id, dataset=card.dataset, arch=card.arch, classes=len(card.classes), input_size=card.input_size,
                channels=card.channels,
                source="imported" if imported else "torchvision" if card.from_torchvision else "trained",
                source_format=card.source.get("format") if imported else None,
                source_file=card.source.get("name") if imported else None,
                test_accuracy=card.metrics.get("accuracy"),
                published_top1=(card.training.get("published_imagenet_1k") or {}).get("acc@1"),
                weights_present=bool(card.weights_sha256), ood_statistics=(Path(path) / "ood.npz").is_file(),
                published_weights=card.training.get("published_file"), warnings=model_warnings(card))


def detail(path: Path, card) -> dict[str, Any]:
    """What ``GET /models/{id}`` answers: the summary, the card and the metrics saved beside it."""
    metrics = dict(card.metrics)
    saved = path / "metrics.json"
    if saved.is_file():
        try:
            metrics = {**metrics, **json.loads(saved.read_text())}
        except (OSError, ValueError):
            pass
    return dict(summary(path, card), card=card.to_dict(), metrics=jsonable(metrics))


@router.get("/models", response_model=list[ModelSummary])
def list_models() -> list[ModelSummary]:
    return [ModelSummary(**summary(p, c)) for p, c in all_cards()]


@router.get("/models/{model_id}", response_model=ModelDetail)
def model_detail(model_id: str) -> ModelDetail:
    return ModelDetail(**detail(*model_card(model_id)))


# ------------------------------------------------------------------------------------------------ importing
def _form_field(s: Setting) -> inspect.Parameter:
    """The form field of one import setting, typed and bounded as the setting declares (the value is then parsed by
    :meth:`Setting.parse`, as every face parses it)."""
    if s.kind == "int":
        annotation, bounds = int | None, {"ge": s.min, "le": s.max}
    elif s.kind == "choice":
        annotation, bounds = Literal[s.choices] | None, {}
    else:  # text, class names (comma-separated, one a line, or JSON), numbers (comma-separated)
        annotation, bounds = str | None, {}
    return inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=Form(None, title=s.label, description=s.help, **bounds))


def settings_as_form_fields(handler):
    """``handler`` taking one form field per import setting (:data:`core.importers.SETTINGS`) in its ``**settings``:
    FastAPI reads the signature, so the fields, their types, bounds and descriptions are the settings' own."""
    own = [p for p in inspect.signature(handler, eval_str=True).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
    file, rest = own[0], [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[1:]]
    params = [file.replace(kind=inspect.Parameter.KEYWORD_ONLY), *(_form_field(s) for s in SETTINGS), *rest]
    handler.__signature__ = inspect.Signature(params, return_annotation=JSONResponse)
    return handler


@router.post("/models", response_model=ImportResponse, status_code=201)
@settings_as_form_fields
async def import_model(
        file: UploadFile = File(..., description="the model: a state dict (.pt, .pth, .bin, .ckpt, .safetensors), "
                                                 "a TorchScript file, an ONNX graph, or a .zip of a timm or Hugging Face "
                                                 "folder (config.json beside its weights); at most XAI_MAX_MODEL_MIB"),
        replace: bool = Form(False, description="replace a model of the same id (otherwise 409)"),
        strict: bool = Form(False, description="save nothing when the check warns (422)"),
        check_images: list[UploadFile] | None = File(None, description="image files to check the model on before "
                                                                        f"it is saved (at most {MAX_CHECK_IMAGES})"),
        check_dataset: str | None = Form(None, description="check on this dataset's images instead (GET /datasets; "
                                                           "default: the model's own dataset when its files are here)"),
        check_split: Literal["train", "val", "test"] = Form("test"),
        check_n: int = Form(64, ge=1, le=256, description="images of the dataset the check runs on"),
        svc: Services = Depends(services), **settings: Any) -> JSONResponse:
    """Import a classifier trained elsewhere, as ``python -m core import-model`` does: read the file (a pickled whole
    model is refused without unpickling anything), draft its card from the settings given, the file and by running
    it, check it on images (``check_images``, else ``check_dataset``, else its own dataset when it is here), and save
    it to the models folder. Answers 201 with the model as ``GET /models/{id}`` shows it, every card value with where
    it came from, the methods offered and those that do not apply, and the check's result.

    400: not a model file this project reads, a pickled model, or a card that contradicts the model (a head of 9
    outputs with 3 class names); 409: the id exists (send ``replace=true``); 413: over ``XAI_MAX_MODEL_MIB``; 422: a
    malformed field, or ``strict=true`` and the check warned. Nothing is saved in any of these cases."""
    limits = svc.limits
    given = _parsed(settings)
    images = check_images or []
    if images and check_dataset:
        raise errors.ParameterError("send check_images or check_dataset, not both")
    if len(images) > MAX_CHECK_IMAGES:
        raise errors.ParameterError(f"{len(images)} check images; an import takes at most {MAX_CHECK_IMAGES}")
    if file.size is not None and file.size > limits.max_model:
        raise ModelTooLarge(_too_large(limits.max_model))
    if "model_id" in given:
        _free(given["model_id"], replace)  # before any work
    blobs = [await f.read(limits.max_upload + 1) for f in images]  # each over the limit is refused when read
    if sum(map(len, blobs)) > limits.max_body:
        raise errors.ImageTooLarge(f"the check images are {mib(sum(map(len, blobs)))} together; the limit is "
                                   f"{mib(limits.max_body)}")

    def work() -> JSONResponse:
        return _import(svc, file, given, replace, strict, blobs, check_dataset, check_split, check_n)

    # reading, converting and probing a large model is a model load: on the decode lane (few at once), never on the
    # event loop; the check's forward pass goes to the compute lane from there
    return await svc.run(work, time.monotonic() + limits.sync_seconds, svc.decode)


def _parsed(fields: dict[str, Any]) -> dict[str, Any]:
    """The settings given, parsed by :meth:`Setting.parse` (a malformed value is a 422 with the setting's message)."""
    from core.importers.settings import given
    from core.modelling.cards import validate_model_id

    try:
        values = given({k: v for k, v in fields.items() if v is not None})
        if "model_id" in values:
            validate_model_id(values["model_id"])
    except errors.CheckpointError as exc:
        raise errors.ParameterError(str(exc)) from None
    return values


def _too_large(limit: int) -> str:
    return (f"the model file is over {mib(limit)}, the limit for an uploaded model (XAI_MAX_MODEL_MIB); import a larger "
            "file by its path on the server (python -m core import-model)")


def _chunks(fh: BinaryIO, limit: int) -> Iterator[bytes]:
    """The uploaded file in chunks (never whole in memory), refused once past ``limit`` bytes."""
    fh.seek(0)
    seen = 0
    while chunk := fh.read(CHUNK):
        seen += len(chunk)
        if seen > limit:
            raise ModelTooLarge(_too_large(limit))
        yield chunk


def _free(model_id: str, replace: bool) -> None:
    """Whether a model may be saved under ``model_id``: not an ImageNet model's name, and no model of that id unless
    ``replace`` (409)."""
    from core.importers.store import model_exists
    from core.modelling.pretrained import imagenet_arch

    if imagenet_arch(model_id):
        raise ModelExists(f"model id {model_id!r} is the name of one of torchvision's ImageNet models: give another "
                          "model_id")
    if not replace and model_exists(model_id):
        raise ModelExists(f"a model {model_id!r} exists already: give another model_id, or send replace=true")


def _import(svc: Services, file: UploadFile, given: dict[str, Any], replace: bool, strict: bool, blobs: list[bytes],
            check_dataset: str | None, check_split: str, check_n: int) -> JSONResponse:
    """The import, on a lane thread: stage the upload inside the models folder (removed whatever happens), read and
    draft it, check it, save it; the answer is serialised here too."""
    from core.explainers import hidden_methods, list_methods
    from core.importers import check, inspect_source, save_imported, staged
    from core.importers.store import model_exists

    limit = svc.limits.max_model
    try:
        with staged(file.filename or "model", _chunks(file.file, limit), config.models_dir(), limit) as path:
            draft = inspect_source(path, **given)
            card = draft.card
            _free(card.id, replace)  # the id may come from the file's name
            got = _check_images(card, blobs, check_dataset, check_split, check_n)
            result = None
            if got is not None:
                x, labels, what = got
                result = svc.computed(lambda: check(draft.model, card, x, labels, what),
                                      time.monotonic() + svc.limits.sync_seconds)
                if strict and result.warnings:
                    raise CheckFailed("the check found problems (strict=true), nothing was saved: "
                                      + "; ".join(result.warnings))
            existed = model_exists(card.id)
            try:
                folder = save_imported(draft, replace=replace)
            except errors.CheckpointError:
                _free(card.id, replace)  # another import saved this id meanwhile: 409
                raise
    except UploadTooLarge as exc:
        raise ModelTooLarge(str(exc)) from exc
    except errors.CheckpointError as exc:  # unreadable, pickled, unknown, unsafe, or a card that contradicts it
        raise ImportRefused(str(exc)) from exc
    body = ImportResponse(
        **detail(*model_card(folder.name)), draft=draft.lines(), origin=draft.origin, notes=draft.notes,
        methods=list_methods(draft.model), hidden_methods=hidden_methods(draft.model),
        check=None if result is None else CheckInfo(**jsonable(vars(result)), lines=result.lines()), replaced=existed)
    return JSONResponse(body.model_dump(mode="json"), status_code=201, headers={"Location": f"/models/{card.id}"})


def _check_images(card, blobs: list[bytes], dataset: str | None, split: str, n: int):
    """The check's images as the CLI picks them: the uploaded ones, else ``dataset``'s (409 when its files are not
    here), else the model's own dataset when it is here; ``None``: nothing to check on."""
    from core.importers import dataset_images, upload_images
    from core.modelling.data_roots import locate

    if blobs:
        return upload_images(card, blobs)
    name = dataset or (card.dataset if card.dataset != "imported" else None)
    if name is None:
        return None
    root, status = locate(name)
    if not status.ready:
        if dataset:
            raise errors.DatasetError(f"cannot check on {name}: {status.detail}")
        return None
    try:
        return dataset_images(card, name, split, root, n=n)
    except errors.CheckpointError as exc:  # the dataset's classes are not the model's
        raise errors.ParameterError(f"cannot check on {name}: {exc}") from None
