"""``sdeflow solvers``: the registry with each solver's declared orders and model calls per step."""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "solver_table"]


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:g}" if isinstance(v, (int, float)) else str(v))


def solver_table() -> list[dict]:
    """One row per registered solver (default options): name, orders, calls per step, stochastic, needs.

    Orders are read from a default instance, since some depend on options (``order=...``).
    """
    from ..solvers import registry

    rows = []
    for name, cls in sorted(registry().items()):
        inst = cls()
        rows.append(
            {
                "name": name,
                "ode_order": inst.ode_order,
                "strong_order": inst.strong_order,
                "weak_order": inst.weak_order,
                "calls_per_step": inst.calls_per_step,
                "stochastic": bool(inst.stochastic),
                "calculus": inst.calculus,
                "needs": inst.needs,
                "options": inst.options(),
                "description": cls.description,
            }
        )
    return rows


def markdown_table() -> str:
    """The solver table in Markdown, as the README shows it (tests keep the README in sync)."""
    lines = [
        "| solver | ODE order | strong order | weak order | model calls / step | stochastic | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in solver_table():
        lines.append(
            f"| `{r['name']}` | {_fmt(r['ode_order'])} | {_fmt(r['strong_order'])} | {_fmt(r['weak_order'])} "
            f"| {r['calls_per_step']} | {'yes' if r['stochastic'] else 'no'} | {r['description']} |"
        )
    return "\n".join(lines)


def process_markdown_table() -> str:
    """The process table in Markdown (README)."""
    from .. import processes

    lines = ["| process | alpha(t), sigma(t) | T | t_min |", "|---|---|---|---|"]
    for name in processes.available():
        p = processes.get(name)
        lines.append(f"| `{name}` ({type(p).__name__}) | {p.formula} | {p.T:g} | {p.t_min:.4g} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ._common import emit

    if args.markdown:
        print(markdown_table())
        return 0
    rows = solver_table()
    head = f"{'solver':<22}{'ODE':>5}{'strong':>8}{'weak':>6}{'calls':>7}  {'noise':<6} description"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:<22}{_fmt(r['ode_order']):>5}{_fmt(r['strong_order']):>8}{_fmt(r['weak_order']):>6}"
            f"{r['calls_per_step']:>7}  {'sde' if r['stochastic'] else 'ode':<6} {r['description']}"
        )
    lines.append("\norders: ODE = on the probability-flow ODE; strong/weak = on SDEs; calls = model calls per step")
    emit(args, rows, "\n".join(lines))
    return 0


def register(sub) -> None:
    from ._common import add_json_option

    p = sub.add_parser("solvers", help="list the registered solvers with their orders and model calls per step")
    add_json_option(p, "print the table as JSON on stdout (a list of rows) instead of text; with FILE, write it there too")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (as in the README)")
    p.set_defaults(func=run)
