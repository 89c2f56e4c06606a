"""Readable graph dumps: one line per node with its op, arguments, output shape and module."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from ..passes.graph_utils import call_target, example, module_path


def _short(value: Any) -> str:
    if isinstance(value, fx.Node):
        return f"%{value.name}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_short(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return repr(value)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        dims = ", ".join(str(d) for d in value.shape)
        return f"{str(value.dtype).removeprefix('torch.')}[{dims}]"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    return type(value).__name__ if value is not None else "None"


def dump_graph(gm: fx.GraphModule) -> str:
    from ..backends.formulas import op_name

    lines = []
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            lines.append(f"%{node.name}: {_describe(example(node))}  (input)")
            continue
        if node.op == "output":
            lines.append(f"return {_short(node.args[0])}")
            continue
        args = ", ".join([_short(a) for a in node.args] + [f"{k}={_short(v)}" for k, v in node.kwargs.items()])
        where = module_path(node) or "model"
        lines.append(f"%{node.name} = {op_name(call_target(node))}({args})  -> {_describe(example(node))}  # {where}")
    return "\n".join(lines) + "\n"
