"""quantize_moe: a MoE block's experts run in the deployment's quantization scheme.

Matches: every `tensor_cast::moe` node whose experts module the checkpoint does not leave
unquantized (`not_converted`, the same patterns `quantize_linears` reads: gpt-oss keeps its
attention and router 16-bit and ships MXFP4 experts; MiniMax-M2 and MiMo-V2-Flash ship FP8
experts). The module names come from `meta["tensor_cast_moe_modules"]` (set by `replace_moe`).
Produces: the same op with its `scheme` argument set; the routed experts' 3-D weights and the
shared experts' weights get `NodeFacts.stored_bytes` (the scheme's stored bytes per
element, scales included — the memory report reads it). The formula then reads those bytes and
runs the expert GEMMs at the scheme's precision (backends/formulas/moe.py).
Invariant after: shapes and dtypes unchanged; every converted MoE op names its scheme.
Example (fp8):
    before: y = moe(h, Wr, [], Wgu, Wd, ..., "none")
    after:  y = moe(h, Wr, [], Wgu, Wd, ..., "fp8")      # Wgu, Wd: 1 byte per element
Refuses: scheme "none" (no-op); MoE ops whose experts are excluded (left "none"). The router
stays in the model dtype (engines run the MoE gate unquantized; `quantize_router` applies to
routers that are plain linears). Shared experts follow the routed experts' scheme, unless
`shared_scheme` names their own (a checkpoint that stores the routed experts apart: DeepSeek-V4's
FP4 experts beside FP8 shared experts), which the op's `shared_scheme` argument then carries.
"""

from __future__ import annotations

import torch
from torch import fx

from ..deployment.quantization import scheme as lookup_scheme
from .graph_utils import finish
from .node_facts import update_facts
from .op_args import arg, set_arg
from .quantize_linears import excluded


def _routed(node: fx.Node) -> list[fx.Node]:
    return [w for w in (arg(node, "gate_up"), arg(node, "down")) if isinstance(w, fx.Node)]


def _shared(node: fx.Node) -> list[fx.Node]:
    return [w for w in (*arg(node, "shared_in"), *arg(node, "shared_out")) if isinstance(w, fx.Node)]


def quantize_moe(gm: fx.GraphModule, *, scheme: str = "none", not_converted: tuple[str, ...] = (),
                 quantize_lm_head: bool = False, quantize_router: bool = False,
                 shared_scheme: str | None = None) -> fx.GraphModule:
    if scheme == "none":
        return gm
    s = lookup_scheme(scheme)
    shared = lookup_scheme(shared_scheme) if shared_scheme and shared_scheme not in ("none", scheme) else s
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.tensor_cast.moe.default:
            continue
        modules = node.meta.get("tensor_cast_moe_modules", {})
        if any(excluded(path, not_converted=not_converted, quantize_lm_head=quantize_lm_head,
                        quantize_router=quantize_router) for path in modules.get("experts", ())):
            continue
        set_arg(node, "scheme", scheme)
        for weight in _routed(node):
            update_facts(weight, stored_bytes=float(s.weight_bytes))
        if shared is not s:
            set_arg(node, "shared_scheme", shared.name)
        for weight in _shared(node):
            update_facts(weight, stored_bytes=float(shared.weight_bytes))
    return finish(gm)
