"""Build a small configured object from a name, a ``config()`` dict, or the object itself."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def from_spec(spec: Any, registry: dict[str, type[T]], base: type, what: str, options: dict[str, Any]) -> T:
    """``registry[name](**options)`` for ``spec`` a name or ``{"name": ..., **options}``; objects pass through.

    Raises ``ValueError`` naming ``what`` and the accepted names for an unknown name or bad options.
    """
    if isinstance(spec, base):
        if options:
            raise ValueError(f"options can only be given with a {what} name, not with a {what} object")
        return spec
    if isinstance(spec, dict):
        options = {**{k: v for k, v in spec.items() if k != "name"}, **options}
        spec = spec.get("name", "")
    if not isinstance(spec, str) or spec not in registry:
        raise ValueError(f"unknown {what} {spec!r}; expected one of {sorted(registry)}")
    try:
        return registry[spec](**options)
    except TypeError as err:
        raise ValueError(f"bad options {options} for {what} {spec!r}: {err}") from err
