"""How the fuzz suite draws inputs: one :class:`Entry` per public entry point.

An entry draws a small *valid* call (``build``: keyword arguments from hypothesis draws) and lists
*mutations*: each replaces one argument of a valid call with a bad value (NaN/inf, an empty tensor,
a negative or zero size, a wrong type or dtype, a grid in the wrong order, an unknown option name or
value) and names the argument the error must name. :func:`cases` turns an entry into a hypothesis
strategy of :class:`~tests.fuzz.harness.Case` objects: a quarter valid calls, the rest one mutation of
a valid call each.

``OPEN`` lists the mutations whose fix belongs to code this suite's authors may not change now
(``sample.py``, ``solvers``, ``grids``, ``noise``): the asserting tests leave them out (``include_open``)
and the reliability benchmark counts them; the report of issue 10 gives their reproducers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from .harness import Case

__all__ = ["DROP", "Mutation", "Entry", "cases", "OPEN", "fmt"]


class _Drop:
    def __repr__(self) -> str:
        return "<missing>"


DROP = _Drop()
"""A mutation value meaning: leave the argument out."""


@dataclasses.dataclass(frozen=True)
class Mutation:
    """Replace argument ``arg`` of a valid call by ``value(valid_kwargs)``; the error must name one of ``names``.

    ``arg`` may be a dotted ``"group.key"`` for an argument inside a sub-dict the entry's ``call`` unpacks.
    """

    arg: str
    label: str
    value: Callable[[dict], Any]
    names: tuple[str, ...] = ()

    @property
    def expected(self) -> tuple[str, ...]:
        return self.names or (self.arg.split(".")[-1],)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A public entry point: how to draw a valid call, how to run it, and how to break it.

    ``expand(mutation, valid_kwargs)`` widens the names an error may use (the CLI: a flag's bare name).
    ``warmup`` runs once before the timed calls (first-call costs: lazy imports of optional libraries).
    ``applicable(valid_kwargs, mutation)`` says which mutations apply to a drawn valid call (a metric's
    ``bins`` only to the histogram metrics, say); ``None``: all of them.
    """

    name: str
    build: Callable[[Callable], dict]
    call: Callable[[dict], Any]
    mutations: tuple[Mutation, ...]
    repro: Callable[[dict], str] = lambda kw: f"({fmt(kw)})"
    check: Callable[[dict, Any], str | None] | None = None
    applicable: Callable[[dict, Mutation], bool] | None = None
    valid_share: float = 0.25
    warmup: Callable[[], Any] | None = None
    expand: Callable[[Mutation, dict], tuple[str, ...]] | None = None


OPEN: dict[str, set[str]] = {}
"""Entry name -> mutation labels left out of the asserting tests (their fixes are outside this suite's
areas; see the module docstring). Filled in by the entry modules."""


def fmt(value: Any) -> str:
    """A short, readable rendering of an argument for reproducers."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items() if v is not DROP)
    if isinstance(value, torch.Tensor):
        if value.numel() <= 8:
            return f"torch.tensor({value.tolist()!r}, dtype={value.dtype})"
        flat = value.detach().reshape(-1)
        flat = flat if flat.is_floating_point() or flat.is_complex() else flat.double()
        tags = []
        if bool(torch.isnan(flat).any()):
            tags.append("NaN")
        if bool(torch.isinf(flat).any()):
            tags.append("inf")
        return f"<tensor {tuple(value.shape)} {value.dtype}{' with ' + '/'.join(tags) if tags else ''}>"
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return f"np.array({value.tolist()!r}, dtype={value.dtype})"
        return f"<array {value.shape} {value.dtype}>"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"<{type(value).__name__} of {len(value)}>"
    r = repr(value)
    return r if len(r) <= 120 else r[:117] + "..."


def _set(kw: dict, arg: str, value: Any) -> dict:
    out = dict(kw)
    if "." in arg:
        group, key = arg.split(".", 1)
        sub = dict(out[group])
        if value is DROP:
            sub.pop(key, None)
        else:
            sub[key] = value
        out[group] = sub
    elif value is DROP:
        out.pop(arg, None)
    else:
        out[arg] = value
    return out


def cases(entry: Entry, include_open: bool = True) -> st.SearchStrategy[Case]:
    """Cases of ``entry``: a valid call (share ``entry.valid_share``) or one mutation of one.

    ``include_open=False`` leaves out the mutations listed in :data:`OPEN` for this entry.
    """
    skip = OPEN.get(entry.name, set()) if not include_open else set()
    every = [m for m in entry.mutations if m.label not in skip]

    @st.composite
    def _case(draw) -> Case:
        kw = entry.build(draw)
        mutations = [m for m in every if entry.applicable is None or entry.applicable(kw, m)]
        # Valid with probability valid_share (hypothesis draws sampled_from's elements evenly; its floats and
        # integers favour boundary values, which would skew the share).
        quarters = round(entry.valid_share * 20)
        if not mutations or draw(st.sampled_from([False] * (20 - quarters) + [True] * quarters)):
            # A build may label a valid call of an open finding ("_label"); without the open ones it is discarded.
            kw = dict(kw)
            label = kw.pop("_label", "valid")
            assume(label not in skip)
            check = (lambda result, kw=kw: entry.check(kw, result)) if entry.check is not None else None
            return Case(entry.name, label, lambda kw=kw: entry.call(kw), True, repro=entry.repro(kw), check=check)
        kw.pop("_label", None)
        m = draw(st.sampled_from(mutations))
        bad = _set(kw, m.arg, m.value(kw))
        names = entry.expand(m, kw) if entry.expand is not None else m.expected
        return Case(entry.name, m.label, lambda bad=bad: entry.call(bad), False, names, repro=entry.repro(bad))

    return _case()


# ------------------------------------------------------------------------------ shared bad values
def with_nan(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y.view(-1)[0] = float("nan")
    return y


def with_inf(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y.view(-1)[-1] = float("inf")
    return y


def empty_batch(x: torch.Tensor) -> torch.Tensor:
    return x[:0]


def tensor_mutations(arg: str, *, names: tuple[str, ...] = (), extra: bool = True) -> list[Mutation]:
    """The bad tensors every tensor argument is tried with."""
    out = [
        Mutation(arg, f"{arg} holds NaN", lambda kw: with_nan(_get(kw, arg)), names),
        Mutation(arg, f"{arg} holds inf", lambda kw: with_inf(_get(kw, arg)), names),
        Mutation(arg, f"{arg} is empty", lambda kw: empty_batch(_get(kw, arg)), names),
        Mutation(arg, f"{arg} is an int tensor", lambda kw: torch.ones_like(_get(kw, arg), dtype=torch.int64), names),
        Mutation(arg, f"{arg} is a string", lambda kw: "x", names),
        Mutation(arg, f"{arg} is None", lambda kw: None, names),
    ]
    if extra:
        out += [
            Mutation(arg, f"{arg} is 0-d", lambda kw: torch.tensor(1.0), names),
            Mutation(arg, f"{arg} is complex", lambda kw: _get(kw, arg).to(torch.complex64), names),
        ]
    return out


def _get(kw: dict, arg: str) -> Any:
    if "." in arg:
        group, key = arg.split(".", 1)
        return kw[group][key]
    return kw[arg]


def number_mutations(arg: str, *, positive: bool = True, integer: bool = False, names: tuple[str, ...] = (),
                     zero_ok: bool = False) -> list[Mutation]:
    """Bad numbers: NaN, inf, negative (and zero), wrong types."""
    out = [
        Mutation(arg, f"{arg} is NaN", lambda kw: float("nan"), names),
        Mutation(arg, f"{arg} is a string", lambda kw: "1", names),
        Mutation(arg, f"{arg} is a list", lambda kw: [1, 2], names),
    ]
    if positive:
        out.append(Mutation(arg, f"{arg} is negative", lambda kw: -3 if integer else -0.5, names))
        if not zero_ok:
            out.append(Mutation(arg, f"{arg} is zero", lambda kw: 0 if integer else 0.0, names))
    if integer:
        out.append(Mutation(arg, f"{arg} is a float", lambda kw: 2.5, names))
    else:
        out.append(Mutation(arg, f"{arg} is inf", lambda kw: float("inf"), names))
    return out


def seeded_randn(seed: int, *shape: int, dtype=torch.float32) -> torch.Tensor:
    """Normal draws from a private generator (the library's and the suite's rule: never the global one)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
