"""Partial evaluation of a lambdified expression: its terms free of one argument, evaluated once.

Owns `Hoisted`: built from a function that `sympy.lambdify` printed (one `return` of one Python
expression of B, S, C, T; numpy or math module), it rewrites that expression's syntax tree so
that every largest subtree not naming the varying argument (C, the cached tokens) becomes a
value computed once per combination of the other arguments (B, S, T) and kept in a bounded
cache (the same subtree twice: one value); the rest is evaluated with those values in place, each
operation it repeats computed once into a local first (`_common_subtrees`: a lambdified cost
repeats its ceilings of C and the terms built on them many times). A decode pool costs its steps
at the same few (B, S, T) again and again with a new C each time (one C per step, or an array of
C for a fast-forwarded run), so most of the expression is not evaluated at all.

Exact by construction: each hoisted or shared subtree is the same Python expression applied to
the same values as in the original (an expression without conditionals is evaluated bottom-up,
every subtree once, and its operations are pure), so the result has the same bits
(tests/test_serving_ff_paths.py). A conditional
or a short-circuit (whose subtrees might not be evaluated at all) is hoisted whole when it is
free of C; one that C flows through is refused (`build` returns None) and the caller evaluates
the original function.

It must not know what the expression costs (batch_cost.py).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

CACHE_SIZE = 4096  # (B, S, T) combinations kept; a decode pool cycles through a few dozen

_REFUSED = (ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp, ast.NamedExpr, ast.Await,
            ast.Yield, ast.YieldFrom)
_LAZY = (ast.IfExp, ast.BoolOp, ast.Compare)  # may leave subtrees unevaluated (a Compare chain stops early)


_KEPT = (ast.Constant, ast.Name, ast.List, ast.Tuple)  # cheap, or mutable: never hoisted themselves
_SHARED = (ast.BinOp, ast.UnaryOp, ast.Call, ast.Compare, ast.Subscript)  # computed once when repeated


class Hoisted:
    """`fn(B, S, C, T)` as `constants(B, S, T)` (cached) + `varying(C, *constants, B, S, T)`."""

    def __init__(self, constants: Callable[..., tuple[Any, ...]], varying: Callable[..., Any], count: int) -> None:
        self.constants = constants
        self.varying = varying
        self.count = count  # subtrees hoisted
        self.cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def __call__(self, b: Any, s: Any, c: Any, t: Any) -> Any:
        key = (b, s, t, type(b), type(s), type(t))  # 64 and 64.0 hash alike but may not compute alike
        values = self.cache.get(key)
        if values is None:
            if len(self.cache) >= CACHE_SIZE:
                self.cache.clear()
            values = self.cache[key] = self.constants(b, s, t)
        return self.varying(c, *values, b, s, t)


def build(fn: Callable[..., Any], varying: str = "C") -> Hoisted | None:
    """`fn`'s hoisted form, or None when its source is not one plain expression of (B, S, C, T)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(func, ast.FunctionDef) or [a.arg for a in func.args.args] != ["B", "S", varying, "T"] \
            or len(func.body) != 1 or not isinstance(func.body[0], ast.Return) or func.body[0].value is None:
        return None
    expr = func.body[0].value
    if any(isinstance(node, _REFUSED) for node in ast.walk(expr)):
        return None
    hoisted: list[ast.expr] = []
    dependent: set[int] = set()  # ids of the nodes whose subtree names `varying`

    def mark(node: ast.AST) -> bool:
        found = isinstance(node, ast.Name) and node.id == varying
        for child in ast.iter_child_nodes(node):
            found = mark(child) or found
        if found:
            dependent.add(id(node))
        return found

    mark(expr)
    # a lazy node without C is hoisted whole (evaluated once as it was); one with C could have its
    # C-free parts hoisted that it would not have evaluated (a branch that raises, say): refused
    if any(isinstance(node, _LAZY) and id(node) in dependent and not _strict(node) for node in ast.walk(expr)):
        return None

    shape = _shapes(expr)
    seen: dict[int, str] = {}  # a hoisted subtree's shape -> its name (the same subtree twice: one value)

    class Hoist(ast.NodeTransformer):
        def generic_visit(self, node: ast.AST) -> ast.AST:
            if isinstance(node, ast.expr) and not isinstance(node, _KEPT) and id(node) not in dependent:
                key = shape[id(node)]
                if key not in seen:
                    seen[key] = f"_h{len(hoisted)}"
                    hoisted.append(node)
                return ast.Name(id=seen[key], ctx=ast.Load())
            return super().generic_visit(node)

    rest = Hoist().visit(expr)
    if not hoisted:
        return None
    shared, rest = _common_subtrees(rest, shape)
    names = ", ".join(f"_h{i}" for i in range(len(hoisted)))
    # ast.unparse keeps the tree (parse(unparse(t)) == t; floats as their repr, which round-trips)
    body = "".join(f"    {name} = {ast.unparse(node)}\n" for name, node in shared)
    source = (f"def _constants(B, S, T):\n    return ({', '.join(map(ast.unparse, hoisted))},)\n"
              f"def _varying({varying}, {names}, B, S, T):\n{body}    return {ast.unparse(rest)}\n")
    namespace = dict(fn.__globals__)
    exec(compile(source, f"<hoisted {fn.__name__}>", "exec"), namespace)
    return Hoisted(namespace["_constants"], namespace["_varying"], len(hoisted))


def _shapes(expr: ast.AST) -> dict[int, int]:
    """id(node) -> a number per distinct subtree shape, for every node of `expr`: two subtrees get
    the same number exactly when they are the same expression (the same node types, fields and
    constants — the text `ast.dump` would give — found bottom-up in one pass)."""
    numbers: dict[tuple[Any, ...], int] = {}
    shapes: dict[int, int] = {}

    def shape(value: Any) -> Any:
        if isinstance(value, ast.AST):
            number = shapes.get(id(value))
            if number is None:
                parts = (type(value).__name__, *((name, shape(field)) for name, field in ast.iter_fields(value)))
                number = shapes[id(value)] = numbers.setdefault(parts, len(numbers))
            return number
        if isinstance(value, list):
            return tuple(map(shape, value))
        return type(value).__name__, repr(value)  # a constant: 1, 1.0 and True differ

    shape(expr)
    return shapes


def _common_subtrees(expr: ast.expr, shape: dict[int, int]) -> tuple[list[tuple[str, ast.expr]], ast.expr]:
    """Common-subexpression elimination: each operation that occurs more than once in `expr` (the
    same shape: `_shapes`, taken before hoisting) becomes a local `_cN` computed once, before the
    return, in the order the subtrees complete (a subtree's own repeats first) — ([(name, subtree)],
    the expression naming them). The same operations on the same values, so the same bits: `expr`
    holds no lazy node that could leave a subtree unevaluated (`build` refuses those, or hoists them
    whole), and every operation in it is pure (arithmetic, ceiling / floor, min / max, numpy's
    select and reductions, which return new values). Hoisted subtrees of the same shape share one
    name (`build`), so the operations around them match as the original subtrees did."""
    counts: dict[int, int] = {}
    for node in ast.walk(expr):
        if isinstance(node, _SHARED):
            counts[shape[id(node)]] = counts.get(shape[id(node)], 0) + 1
    names: dict[int, str] = {}
    shared: list[tuple[str, ast.expr]] = []

    class Share(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> ast.AST:
            if not isinstance(node, _SHARED):
                return self.generic_visit(node)
            key = shape[id(node)]  # (the node's shape before anything in it was hoisted or shared)
            if key in names:
                return ast.Name(id=names[key], ctx=ast.Load())
            node = self.generic_visit(node)
            if counts[key] < 2:
                return node
            assert isinstance(node, ast.expr)
            names[key] = f"_c{len(shared)}"
            shared.append((names[key], node))
            return ast.Name(id=names[key], ctx=ast.Load())

    rest = Share().visit(expr)
    assert isinstance(rest, ast.expr)
    return shared, rest


def _strict(node: ast.AST) -> bool:
    """A comparison of two operands evaluates both; other lazy nodes may not."""
    return isinstance(node, ast.Compare) and len(node.ops) == 1
