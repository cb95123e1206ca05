"""``/datasets``: the registered datasets with their state on this server, and single images as PNG."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from core import errors
from core.faces.api.http_errors import public
from core.faces.api.limits import GUARDED
from core.faces.api.schemas import DatasetSummary
from core.faces.api.services import cached_dataset

router = APIRouter(tags=["datasets"], dependencies=GUARDED)


@router.get("/datasets", response_model=list[DatasetSummary])
def datasets() -> list[DatasetSummary]:
    from core.datasets import dataset_info, dataset_status, list_datasets

    out = []
    for n in list_datasets():
        info, st = dataset_info(n), dataset_status(n)
        out.append(DatasetSummary(name=n, title=info.title, classes=list(info.classes), channels=info.channels or 0,
                                  image_size=info.image_size, splits=list(info.splits), state=st.state,
                                  detail=public(st.detail)))
    return out


@router.get("/datasets/{name}/{split}/{index}", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def dataset_image(name: str, split: Literal["train", "val", "test"], index: int) -> Response:
    from core.present.render import png_bytes

    ds = cached_dataset(name, split, None)
    if not 0 <= index < len(ds):
        raise errors.ParameterError(f"index must be in [0, {len(ds) - 1}] for {name} {split}, got {index}")
    label = int(ds.labels[index])
    return Response(png_bytes(ds.image(index)), media_type="image/png",
                    headers={"X-Label": str(label), "X-Label-Name": ds.classes[label]})
