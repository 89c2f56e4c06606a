"""eliminate_noop_views: remove ops that return their input unchanged.

Matches: `.contiguous()` of a contiguous tensor; `.to(...)` / `.float()` / `.type_as(...)` that
keeps dtype and shape; `view` / `reshape` / `expand` to the input's own shape.
Produces: nothing; users read the input directly.
Invariant after: none of the matched ops remains; every shape and dtype in the graph is unchanged.
Example: `attn_output.reshape(B, S, H*D).contiguous()` after the attention op (already
contiguous) becomes `attn_output.reshape(B, S, H*D)`.
Refuses: conversions that change dtype, reshapes that change shape, copies of non-contiguous
tensors (real kernels, costed as copies).
"""

from __future__ import annotations

import torch
from torch import fx

from .graph_utils import example, finish, is_tensor_node, shape_key

CONVERSIONS = {"to", "float", "half", "bfloat16", "type_as", "type", "double"}
SAME_SHAPE_VIEWS = {"view", "reshape", "expand", "expand_as", "view_as"}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and shape_key(a) == shape_key(b) and a.device == b.device


def is_noop(node: fx.Node) -> bool:
    """The node returns its input unchanged (a matched no-op conversion or view)."""
    if node.op != "call_method" or not node.args or not is_tensor_node(node.args[0]):
        return False
    out, src = example(node), example(node.args[0])
    if not isinstance(out, torch.Tensor):
        return False
    if node.target == "contiguous":
        return bool(src.is_contiguous())
    if node.target in CONVERSIONS or node.target in SAME_SHAPE_VIEWS:
        return _same(out, src)
    return False


def eliminate_noop_views(gm: fx.GraphModule) -> fx.GraphModule:
    for node in list(gm.graph.nodes):
        if is_noop(node):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    return finish(gm)
