"""Arguments of an op call by name, from the op's own `torch.library` schema.

Owns `position(op, name)` (where argument `name` sits in a positional call of `op`), `bind(op,
args, kwargs)` (every argument of one call, by name, defaults filled) and `rebind(op, args,
kwargs, **updates)` (the positional argument tuple of the same call with some arguments changed).
Passes and cost rules read and rewrite custom-op arguments through these, never by position: a
schema that gains or reorders an argument keeps working, and a misspelled name is an error
naming the op and its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import torch

_MISSING = object()


@cache
def _names(op: torch._ops.OpOverload) -> tuple[str, ...]:
    return tuple(a.name for a in op._schema.arguments)


def position(op: torch._ops.OpOverload, name: str) -> int:
    names = _names(op)
    if name not in names:
        raise KeyError(f"{op._schema.name} has no argument {name!r}; its arguments: {', '.join(names)}")
    return names.index(name)


def _default(op: torch._ops.OpOverload, index: int) -> Any:
    argument = op._schema.arguments[index]
    return argument.default_value if argument.has_default_value() else _MISSING


def value(op: torch._ops.OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any], name: str) -> Any:
    """Argument `name` of the call `op(*args, **kwargs)` (its schema default when not passed)."""
    index = position(op, name)
    if name in kwargs:
        return kwargs[name]
    if index < len(args):
        return args[index]
    default = _default(op, index)
    if default is _MISSING:
        raise KeyError(f"{op._schema.name}: argument {name!r} was not passed and has no default")
    return default


def bind(op: torch._ops.OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Every argument of the call, by schema name (defaults filled where not passed)."""
    out = {}
    for name in _names(op):
        try:
            out[name] = value(op, args, kwargs, name)
        except KeyError:
            continue
    return out


def rebind(op: torch._ops.OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any],
           **updates: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) of the same call with the named arguments replaced; an argument past the
    passed positional ones is appended positionally, the ones between filled with their defaults."""
    new_args, new_kwargs = list(args), dict(kwargs)
    for name, new in updates.items():
        index = position(op, name)
        if name in new_kwargs:
            new_kwargs[name] = new
            continue
        while len(new_args) <= index:
            default = _default(op, len(new_args))
            if default is _MISSING:
                raise KeyError(f"{op._schema.name}: cannot set {name!r} before required argument "
                               f"{_names(op)[len(new_args)]!r} is passed")
            new_args.append(default)
        new_args[index] = new
    return tuple(new_args), new_kwargs


def positional(op: torch._ops.OpOverload, values: Mapping[str, Any]) -> tuple[Any, ...]:
    """The positional argument tuple of a call given by name: schema order, trailing defaults left
    out, an unknown name or a required argument not given an error."""
    names = _names(op)
    unknown = set(values) - set(names)
    if unknown:
        raise KeyError(f"{op._schema.name} has no argument(s) {sorted(unknown)}; its arguments: {', '.join(names)}")
    last = max((names.index(n) for n in values), default=-1)
    out = []
    for index, name in enumerate(names[:last + 1]):
        if name in values:
            out.append(values[name])
            continue
        default = _default(op, index)
        if default is _MISSING:
            raise KeyError(f"{op._schema.name}: required argument {name!r} not given")
        out.append(default)
    return tuple(out)
