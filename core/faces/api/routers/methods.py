"""``/methods``: every attribution method with its declared parameters, abilities and requirements."""
from __future__ import annotations

from fastapi import APIRouter

from core.faces.api.limits import GUARDED
from core.faces.api.schemas import MethodInfo

router = APIRouter(tags=["methods"], dependencies=GUARDED)


@router.get("/methods", response_model=list[MethodInfo])
def methods() -> list[MethodInfo]:
    from core.explainers import get_method, list_methods
    from core.present.render import map_view

    return [MethodInfo(name=m, title=(cls := get_method(m)).title, family=cls.family, description=cls.description,
                       paper=cls.paper, params=list(cls.params), stochastic=cls.stochastic, signed=cls.signed,
                       class_specific=cls.class_specific, view=map_view(cls.view, cls.signed), units=cls.units, requires=dict(cls.requires))
            for m in list_methods()]
