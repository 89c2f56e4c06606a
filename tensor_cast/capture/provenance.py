"""Where each captured node comes from, resolved against the model itself.

Owns `attach_provenance(gm, model, example_inputs, layers)`, run once right after capture, and
`parameter_layers(model, layers)`:

- every node's `nn_module_stack` is rewritten to hold the module paths of the model's own
  `named_modules()` ("model.layers.0.mlp"), found by module identity: dynamo keys each stack
  entry by `id(module)` (`id@n` for the module's n-th call). The source-name strings dynamo writes (`L['self'].model...` in one
  transformers release, `L['args'][0].model...` in the next, when the forward is wrapped in a
  decorator) are never parsed;
- every node gets its `NodeFacts` (`passes/node_facts.py`): the decoder layer it belongs to (the
  stack entry whose module *is* one of `layers`, the representative model's decoder layers),
  its phase (prologue / layer / epilogue, by graph order), and on parameter / buffer placeholders
  the parameter's name in `named_parameters()` (tied weights: the first name) and its layer,
  found by tensor identity from the inputs dynamo hands the backend, in placeholder order;
- the graph's `meta[LAYERS_KEY]`: the layers that own call nodes (what `verify_contract` keeps).

A stack entry whose module is not in the model is a `CaptureError` naming the versions: the
tracer changed in a way tensor_cast does not know, and costing on would undercount silently. One
kind of foreign module is known and transparent (`kernel_function_wrappers`): with the `kernels`
package installed, transformers 5.25 turns hub-kernel functions such as `apply_rotary_pos_emb` into
parameterless modules called from the model's forward; their ops belong to the module that calls them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import fx

from ..errors import CaptureError
from ..passes.node_facts import LAYERS_KEY, NodeFacts, set_facts
from ..versions import versions_line


def _tensor_layers(layers: Sequence[torch.nn.Module]) -> dict[int, int]:
    """id(parameter or buffer) -> index of the decoder layer holding it."""
    out: dict[int, int] = {}
    for index, layer in enumerate(layers):
        for tensor in [*layer.parameters(), *layer.buffers()]:
            out.setdefault(id(tensor), index)
    return out


def parameter_layers(model: torch.nn.Module, layers: Sequence[torch.nn.Module]) -> dict[str, int]:
    """Name of every parameter held by one of `layers` -> that layer's index (by identity)."""
    owner = _tensor_layers(layers)
    return {name: owner[id(p)] for name, p in model.named_parameters() if id(p) in owner}


def _is_function_wrapper(value: Any) -> bool:
    """A `kernels` hub-kernel function turned module: `kernel_layer_name`, no parameters or buffers."""
    return (isinstance(value, torch.nn.Module) and hasattr(value, "kernel_layer_name")
            and next(value.parameters(), None) is None and next(value.buffers(), None) is None)


def kernel_function_wrappers(model: torch.nn.Module) -> set[int]:
    """ids of the function wrappers the model's forward may call without owning them (module docstring):
    the module-level globals of the files that define the model's module classes (`@use_kernel_forward_from_hub`
    on a function makes it a module instance) and each module's private copies (`_kernel_funcs`, what
    `@use_kernelized_func` routes the global's calls to)."""
    out: set[int] = set()
    sources: set[str] = set()
    for module in model.modules():
        out.update(id(fn) for fn in vars(module).get("_kernel_funcs", {}).values() if _is_function_wrapper(fn))
        sources.add(type(module).__module__)
    for name in sources:
        source = sys.modules.get(name)
        if source is not None:
            out.update(id(value) for value in vars(source).values() if _is_function_wrapper(value))
    return out


def attach_provenance(gm: fx.GraphModule, model: torch.nn.Module, example_inputs: Sequence[Any],
                      layers: Sequence[torch.nn.Module] = ()) -> None:
    paths = {id(module): name for name, module in model.named_modules(remove_duplicate=False)}
    transparent = kernel_function_wrappers(model)
    layer_of_module = {id(module): index for index, module in enumerate(layers)}
    unknown: set[str] = set()
    layer_of: dict[fx.Node, int | None] = {}
    for node in gm.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        layer_of[node] = None
        if not stack:
            continue
        resolved = {}
        for key, (raw, cls) in stack.items():
            module_id = str(key).split("@", 1)[0]  # "<id>@<n>": the module's n-th call
            if module_id.isdigit() and int(module_id) in transparent:
                continue  # a hub-kernel function wrapper: its ops are its caller's
            path = paths.get(int(module_id)) if module_id.isdigit() else None
            if path is None:
                unknown.add(str(raw))
                continue
            resolved[key] = (path, cls)
            if layer_of[node] is None:
                layer_of[node] = layer_of_module.get(int(module_id))
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
    owner = _tensor_layers(layers)
    for node, value in zip(placeholders, example_inputs, strict=True):
        layer = owner.get(id(value))
        set_facts(node, NodeFacts(layer=layer, phase="prologue" if layer is None else "layer",
                                  param=tensors.get(id(value))))
    seen_layer = False
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        layer = layer_of[node] if node.op not in ("output", "get_attr") else None
        seen_layer = seen_layer or layer is not None
        phase = "layer" if layer is not None else ("epilogue" if seen_layer else "prologue")
        set_facts(node, NodeFacts(layer=layer, phase=phase))
    gm.meta[LAYERS_KEY] = tuple(sorted({layer_of[n] for n in gm.graph.nodes if n.op in ("call_function", "call_method")
                                        and layer_of[n] is not None}))
