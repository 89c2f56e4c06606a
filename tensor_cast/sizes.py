"""Symbolic sizes and the helpers that keep formulas symbolic-safe.

Owns the three symbols every analysis is written in — batch size `B`, query length `S` (new tokens
per sequence in this step) and context length `C` (tokens already in the KV cache) — and the small
helpers (`smax`, `smin`, `cdiv`, `numel`) that work on ints and sympy expressions alike. Formulas
must use these instead of `max`, `math.ceil` or a Python `if` on a size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import sympy

B = sympy.Symbol("B", integer=True, positive=True)
S = sympy.Symbol("S", integer=True, positive=True)
C = sympy.Symbol("C", integer=True, nonnegative=True)
SYMBOLS: tuple[sympy.Symbol, ...] = (B, S, C)
SYMBOL_FOR_ARG = {"batch_size": B, "query_len": S, "context_len": C}

Size = Any  # int | sympy.Expr


def as_expr(value: Any) -> sympy.Expr:
    """An int, float, SymInt-converted or sympy value as a sympy expression."""
    if isinstance(value, sympy.Basic):
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return sympy.Integer(int(value))
    if isinstance(value, int):
        return sympy.Integer(value)
    if isinstance(value, float):
        return sympy.Float(value)
    raise TypeError(f"not a size: {value!r} ({type(value).__name__})")


def is_concrete(value: Any) -> bool:
    return isinstance(value, (int, float)) or (isinstance(value, sympy.Basic) and value.is_number)


def smax(*values: Size) -> Size:
    if all(isinstance(v, (int, float)) for v in values):
        return max(values)
    return _extremum(sympy.Max, max, values)


def smin(*values: Size) -> Size:
    if all(isinstance(v, (int, float)) for v in values):
        return min(values)
    return _extremum(sympy.Min, min, values)


def _extremum(kind: type, pick: Any, values: tuple[Size, ...]) -> Size:
    """Max / Min of sizes some of which are symbolic, without sympy's pairwise simplification.

    sympy decides which arguments of Max / Min dominate by comparing every pair
    (`_find_localzeros`), which costs tens of milliseconds on the nested expressions of tile and
    wave formulas; here the numbers fold into one and repeated arguments collapse, and the rest stay
    unevaluated: the same value at every point (substitution evaluates it), never a wrong one."""
    numbers = [as_expr(v) for v in values if is_concrete(v)]
    args: list[sympy.Expr] = []
    if numbers:
        args.append(pick(numbers, key=float))
    for value in values:
        if not is_concrete(value):
            expr = as_expr(value)
            if expr not in args:
                args.append(expr)
    return args[0] if len(args) == 1 else kind(*args, evaluate=False)


def cdiv(a: Size, b: Size) -> Size:
    """Ceiling division, symbolic-safe."""
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    return sympy.ceiling(as_expr(a) / as_expr(b))


def numel(shape: Iterable[Size]) -> Size:
    out: Size = 1
    for d in shape:
        out = out * d
    return out


def to_number(value: Any) -> float:
    """A concrete value (int, float or numeric sympy) as a Python float."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, sympy.Basic):
        if not value.is_number:
            raise ValueError(f"expression {value} still has free symbols {sorted(map(str, value.free_symbols))}")
        return float(value)
    raise TypeError(f"not a number: {value!r}")


def substitute(value: Any, point: Mapping[sympy.Symbol, int]) -> Any:
    """Evaluate a size at a point (symbol -> int); ints pass through unchanged."""
    if isinstance(value, sympy.Basic):
        out = value.xreplace({k: sympy.Integer(v) for k, v in point.items()})
        return out
    return value


def pretty(value: Any) -> str:
    """Readable form of a size: ints with thousands separators, expressions as sympy prints them."""
    if isinstance(value, sympy.Basic) and value.is_number:
        value = float(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
