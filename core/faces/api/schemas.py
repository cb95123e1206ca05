"""The API's request and response schemas (pydantic). Names end in what they are (``...Response``, ``...Summary``,
``...Info``) so none shadows a core type; a method's parameters are :class:`core.params.Param` itself."""
from __future__ import annotations

import base64
import zlib
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from core.params import Param


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Version(BaseModel):
    project: str
    python: str
    libraries: dict[str, str]
    device: str


class ModelSummary(BaseModel):
    id: str
    dataset: str
    arch: str
    classes: int
    input_size: int
    channels: int
    source: Literal["trained", "torchvision", "imported"] = Field(
        description="trained here, one of torchvision's ImageNet classifiers, or imported from a file made elsewhere")
    source_format: str | None = Field(None, description="imported models: the format of the file it was imported "
                                      "from (state_dict, torchscript, onnx, timm, huggingface)")
    source_file: str | None = Field(None, description="imported models: the name of the file (or zipped folder) it "
                                    "was imported from")
    test_accuracy: float | None = Field(None, description="measured on the dataset's test split (trained models)")
    published_top1: float | None = Field(None, description="ImageNet-1K acc@1 published by torchvision (percent)")
    weights_present: bool
    ood_statistics: bool = Field(description="uploads get an out-of-distribution check")
    published_weights: bool | None = Field(None, description="ImageNet models: whether the weights file is "
                                           "torchvision's published one (null: not here yet, or a trained model)")
    warnings: list[str] = Field(description="reasons not to trust this model's predictions")


class ModelDetail(ModelSummary):
    card: dict[str, Any]
    metrics: dict[str, Any] = Field(description="test metrics, per-class metrics and the confusion matrix, where known")


class CheckInfo(BaseModel):
    """What an imported model predicted on the check's images before it was saved (:class:`core.importers.CheckResult`)."""

    source: str = Field(description="the images it ran on")
    n: int
    predicted: list[int] = Field(description="the predicted class index of each image")
    counts: dict[str, int] = Field(description="images predicted as each class name")
    labelled: int = Field(description="images with a known label (a dataset's); 0 for uploads")
    accuracy: float | None
    balanced_accuracy: float | None
    warnings: list[str] = Field(description="what looks wrong (a wrong mean / std, pixel range, channel order, class "
                                            "order), with the likely causes")
    lines: list[str] = Field(description="the same, as the command line prints it")


class ImportResponse(ModelDetail):
    """The imported model as ``GET /models/{id}`` shows it, with what the import found."""

    draft: list[str] = Field(description="every card value and where it came from (given, the file, detected, "
                                         "default), one a line")
    origin: dict[str, str] = Field(description="card value -> where it came from")
    notes: list[str] = Field(description="what the import assumed or changed")
    methods: list[str] = Field(description="the attribution methods offered for this model")
    hidden_methods: dict[str, str] = Field(description="methods that do not apply to it, each with the reason")
    check: CheckInfo | None = Field(description="the check on images before saving; null: no images to run it on "
                                                "(send check_images, or check_dataset with its files on the server)")
    replaced: bool = Field(description="a model of that id was replaced")


class MethodInfo(BaseModel):
    name: str
    title: str
    family: str
    description: str
    paper: str
    params: list[Param] = Field(description="the method's declared parameters (core.params.Param, as declared)")
    stochastic: bool
    signed: bool
    class_specific: bool = Field(description="false: the same map for every class (attention rollout, Eigen-CAM)")
    view: Literal["signed", "magnitude"] = Field(description="the colour rule its maps are shown with by default")
    units: str
    requires: dict[str, str] = Field(description="architecture traits the method needs, with the reason")


class DatasetSummary(BaseModel):
    name: str
    title: str
    classes: list[str]
    channels: int
    image_size: int
    splits: list[str]
    state: str
    detail: str


class TopK(BaseModel):
    index: int
    name: str
    probability: float


class Ood(BaseModel):
    score: float
    threshold: float
    flagged: bool
    message: str


class PredictResponse(BaseModel):
    model: str
    image: dict[str, Any]
    prediction: int
    prediction_name: str
    probabilities: list[float] = Field(description="one per class, in the model card's class order")
    top_k: list[TopK]
    ood: Ood | None = Field(None, description="out-of-distribution verdict (uploads to models with statistics)")
    saturated: bool
    warnings: list[str]


class ArrayData(BaseModel):
    shape: list[int]
    dtype: Literal["float32"] = "float32"
    encoding: Literal["zlib+base64"] = "zlib+base64"
    data: str = Field(description="base64 of the zlib-compressed little-endian float32 values, row-major")


class MethodResult(BaseModel):
    method: str
    title: str
    target: int
    target_name: str
    params: dict[str, Any] = Field(description="every parameter used, defaults and seeds included")
    seconds: float
    signed: bool
    flat: bool
    extras: dict[str, Any]
    attribution: ArrayData
    npy_base64: str | None = Field(None, description="the map as .npy bytes, base64 (with npy=true)")
    overlay_png_base64: str
    rule: Literal["signed", "magnitude"] = Field(description="the colour rule the overlay is drawn in (the method's "
                                                             "declared one, or the request's view)")
    quality: dict[str, dict[str, float]] = Field(description="quality numbers already computed for this model and "
                                                             "method: metric -> {mean, n}")


class ExplainResponse(BaseModel):
    model: str
    image: dict[str, Any]
    prediction: int
    prediction_name: str
    results: list[MethodResult]
    warnings: list[str]


class JobInfo(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"] = Field(
        description="interrupted: the server restarted before the job finished (submit it again)")
    done: int = Field(description="model images evaluated so far")
    total: int
    seconds_left: float | None
    result: ExplainResponse | None = None
    error: str | None = None


class Error(BaseModel):
    detail: str
    error: str


def encode_array(a: np.ndarray) -> ArrayData:
    a = np.ascontiguousarray(a, dtype="<f4")
    return ArrayData(shape=list(a.shape), data=base64.b64encode(zlib.compress(a.tobytes(), 6)).decode())


def decode_array(d: dict[str, Any] | ArrayData) -> np.ndarray:
    """The inverse of :func:`encode_array` (for clients written in Python, and the tests)."""
    d = d if isinstance(d, dict) else d.model_dump()
    return np.frombuffer(zlib.decompress(base64.b64decode(d["data"])), dtype="<f4").reshape(d["shape"])
