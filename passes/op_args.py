"""Custom-op arguments of a graph node, by schema name.

Owns `arg(node, name)` and `set_arg(node, name, value)` (alias `set_args(node, **values)`):
passes read and rewrite the arguments of `tensor_cast::*` (or any `OpOverload`) calls through the
op's `torch.library` schema (`tensor_cast/ops/schema.py`), never through argument positions.
"""

from __future__ import annotations

from typing import Any

from torch import fx

from ..ops import schema


def arg(node: fx.Node, name: str) -> Any:
    """Argument `name` of a call node (its schema default when not passed)."""
    return schema.value(node.target, node.args, node.kwargs, name)  # type: ignore[arg-type]


def args_of(node: fx.Node) -> dict[str, Any]:
    """Every argument of a call node, by name."""
    return schema.bind(node.target, node.args, node.kwargs)  # type: ignore[arg-type]


def set_args(node: fx.Node, **values: Any) -> None:
    """Rewrite the named arguments of a call node in place."""
    args, kwargs = schema.rebind(node.target, node.args, node.kwargs, **values)  # type: ignore[arg-type]
    node.args, node.kwargs = args, kwargs


def set_arg(node: fx.Node, name: str, value: Any) -> None:
    set_args(node, **{name: value})


def call_args(op: Any, **values: Any) -> tuple[Any, ...]:
    """The positional arguments of a new call of `op`, given by name (schema order)."""
    return schema.positional(op, values)
