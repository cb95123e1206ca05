"""One parameter dialect for everything a user sets: methods' parameters, quality metrics' options, run settings."""
from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

import numpy as np

from core.errors import ParameterError

ParamKind = Literal["int", "float", "choice", "bool", "layer"]


@dataclass(frozen=True)
class Param:
    """One declared parameter (of a method, a quality metric, a run): type, default and range, with a label and a
    help line. The pages build their widgets from it, the CLI its flags, the API its schema; :meth:`validate`
    checks a value from any of them.

    The name, kind and default are positional; everything else is by keyword, as timm's ``PretrainedCfg``::

        Param("n_steps", "int", 64, min=4, max=512, step=4, label="Steps", help="Integration steps")
    """

    name: str
    kind: ParamKind
    default: Any
    _: KW_ONLY
    help: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""
    #: ``(other_parameter, value)``: this parameter only matters when the other one has that value (a UI
    #: shows it only then; otherwise its default is used)
    when: tuple[str, str] | None = None

    def validate(self, value: Any) -> Any:
        """Coerce ``value`` to this parameter's type or raise :class:`ParameterError`."""
        try:
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(value)
            elif self.kind == "float":
                value = float(value)
                if not np.isfinite(value):
                    raise ValueError
            elif self.kind == "bool":
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError
                    value = value.lower() in ("true", "1", "yes")
                value = bool(value)
            elif self.kind in ("choice", "layer"):
                value = str(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {self.name!r} must be {self.kind}, got {value!r}") from None
        if self.kind == "choice" and value not in self.choices:
            raise ParameterError(f"parameter {self.name!r} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.kind in ("int", "float"):
            if self.min is not None and value < self.min or self.max is not None and value > self.max:
                raise ParameterError(f"parameter {self.name!r} must be in [{self.min}, {self.max}], got {value}")
        return value

    def widget_label(self) -> str:
        """The label a UI shows: the declared one, else the name."""
        return self.label or self.name


def defaults(params: tuple[Param, ...]) -> dict[str, Any]:
    """Every parameter's default, by name."""
    return {p.name: p.default for p in params}


def resolve(owner: str, params: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """The full, validated set: defaults filled in, each value checked, unknown names refused (naming what
    ``owner`` takes)."""
    known = {p.name: p for p in params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ParameterError(f"{owner} has no parameter {', '.join(map(repr, unknown))}; it takes: "
                             f"{', '.join(known) or 'none'}")
    return {name: p.validate(given.get(name, p.default)) for name, p in known.items()}
