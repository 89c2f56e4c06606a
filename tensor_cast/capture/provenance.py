"""Where each captured node comes from, resolved against the model itself.

Owns `attach_provenance(gm, model, example_inputs)`, run once right after capture:

- every node's `nn_module_stack` is rewritten to hold the module paths of the model's own
  `named_modules()` ("model.layers.0.mlp"), found by module identity: dynamo keys each stack
  entry by `id(module)` (`id@n` for the module's n-th call). The source-name strings dynamo writes (`L['self'].model...` in one
  transformers release, `L['args'][0].model...` in the next, when the forward is wrapped in a
  decorator) are never parsed;
- every parameter / buffer placeholder gets `meta[PARAM_KEY]`, the parameter's name in
  `named_parameters()` (tied weights: the first name), found by tensor identity from the inputs
  dynamo hands the backend, in placeholder order.

A stack entry whose module is not in the model is a `CaptureError` naming the versions: the
tracer changed in a way tensor_cast does not know, and costing on would undercount silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import fx

from ..errors import CaptureError
from ..versions import versions_line

PARAM_KEY = "tensor_cast_param"  # on placeholders: the parameter's name in the model


def parameter_name(node: fx.Node) -> str | None:
    """The model parameter (or buffer) a placeholder carries, or None."""
    return node.meta.get(PARAM_KEY) if node.op == "placeholder" else None


def attach_provenance(gm: fx.GraphModule, model: torch.nn.Module, example_inputs: Sequence[Any]) -> None:
    paths = {id(module): name for name, module in model.named_modules(remove_duplicate=False)}
    unknown: set[str] = set()
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if not stack:
            continue
        resolved = {}
        for key, (raw, cls) in stack.items():
            module_id = str(key).split("@", 1)[0]  # "<id>@<n>": the module's n-th call
            path = paths.get(int(module_id)) if module_id.isdigit() else None
            if path is None:
                unknown.add(str(raw))
                continue
            resolved[key] = (path, cls)
        node.meta["nn_module_stack"] = resolved
    if unknown:
        raise CaptureError(f"{type(model).__name__}: {len(unknown)} traced module(s) are not modules of the model "
                           f"(e.g. {sorted(unknown)[0]!r}): the tracer keys modules differently than expected "
                           f"({versions_line()})")
    tensors: dict[int, str] = {}
    for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        tensors.setdefault(id(tensor), name)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(example_inputs):
        raise CaptureError(f"{type(model).__name__}: {len(placeholders)} graph inputs but {len(example_inputs)} "
                           f"example inputs ({versions_line()})")
    for node, value in zip(placeholders, example_inputs, strict=True):
        param = tensors.get(id(value))
        if param is not None:
            node.meta[PARAM_KEY] = param
