"""verify_attention_replaced: refuse graphs whose attention escaped `tensor_cast::attention`.

Attention is replaced at capture: transformers' attention registry routes every attention
module of a supported family to the project's KV-cache-aware op (`capture/attention_interface`).
A module that computes attention itself — a direct `scaled_dot_product_attention` call or an
eager softmax inside an attention module — would be costed without its KV cache in decode, a
silently wrong number; this pass makes that an error naming the module.

Matches: SDPA calls anywhere; softmax inside a module whose class name contains "Attention".
Produces: nothing (a check). Invariant after: every attention in the graph is `tensor_cast::attention`
(or an op of its own family added by a later issue: MLA, linear attention).
Refuses: n/a — raises `UnsupportedModelError`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx

from ..errors import UnsupportedModelError
from .graph_utils import call_target, module_class, module_path

RAW_ATTENTION = {torch._C._nn.scaled_dot_product_attention, torch.ops.aten.scaled_dot_product_attention.default}
SOFTMAX = {F.softmax, torch.softmax, "Tensor.softmax"}


def verify_attention_replaced(gm: fx.GraphModule) -> fx.GraphModule:
    for node in gm.graph.nodes:
        if node.op not in ("call_function", "call_method"):
            continue
        target = call_target(node)
        raw = target in RAW_ATTENTION or (target in SOFTMAX and "Attention" in module_class(node))
        if raw:
            raise UnsupportedModelError(
                f"{module_class(node)} at {module_path(node)} computes attention itself instead of calling "
                "transformers' attention interface, so its KV cache cannot be modelled")
    return gm
