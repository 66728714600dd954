"""Forward noising processes ``x_t = alpha(t) x0 + sigma(t) eps`` (data at t=0, noise at t=T)."""

from __future__ import annotations

from typing import Any

from .base import DiffusionProcess
from .others import EDM, VE, Cosine, Linear
from .vp import VP, DiscreteVP, SubVP

__all__ = ["DiffusionProcess", "VP", "SubVP", "DiscreteVP", "VE", "EDM", "Cosine", "Linear", "available", "get"]

_REGISTRY: dict[str, type[DiffusionProcess]] = {
    cls.name: cls for cls in (VP, SubVP, VE, EDM, Cosine, Linear)
}


def available() -> list[str]:
    """Names of the built-in processes (``DiscreteVP`` is built from a table, not by name)."""
    return sorted(_REGISTRY)


def get(name: "str | DiffusionProcess", **kwargs: Any) -> DiffusionProcess:
    """A process by name (``vp``, ``subvp``, ``ve``, ``edm``, ``cosine``, ``linear``) with options."""
    if isinstance(name, DiffusionProcess):
        if kwargs:
            raise ValueError("options can only be given with a process name, not with a process object")
        return name
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(f"unknown process {name!r}; expected one of {available()}")
    return _REGISTRY[name.lower()](**kwargs)
