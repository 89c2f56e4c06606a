"""replace_mla: DeepSeek multi-head latent attention becomes one `tensor_cast::mla_attention`.

Matches: in a module whose class is in `MLA_ATTENTION_CLASSES`, a `tensor_cast::attention` whose
keys and values come from the module's `expand_kv` (transformers' MLA: the latent up-projected by
`kv_b_proj` into per-head no-rope keys and values, the shared rope key broadcast to every head and
copied beside them) and whose query is `cat(q_nope, q_rope)`.
Produces: `mla_attention(q_nope, q_rope, latent, k_rope, kv_b_proj.weight, context_len, scale,
None, decode_query_len)`: attention over the latent cache (kv_lora_rank + qk_rope_head_dim
values per token). Its cost is computed in the absorbed or expanded form the cost knob
`CostKnobs.mla_form` picks (auto | absorbed | expanded; auto switches at `decode_query_len`
tokens per sequence, the step size engines still run as decode): the form is not in the graph,
so changing it re-costs and never re-traces. `mla_attention` ops that module swaps emitted at
build time (DeepSeek sparse attention) get the same `decode_query_len`.
Invariant after: no `kv_b_proj` GEMM, no expanded K/V and no `tensor_cast::attention` remain in
a matched module; the attention output keeps its shape (B, S, H, v_head_dim) and dtype.
Example:
    before: kv = linear(latent, W_kv_b).view(...).transpose(1, 2); k_nope, v = split(kv)
            k = new_empty(...); k[..., :128].copy_(k_nope); k[..., 128:].copy_(k_rope.expand(...))
            out = attention(cat(q_nope, q_rope), k, v, C, scale, True, 0, None)
    after:  out = mla_attention(q_nope, q_rope, latent, k_rope, W_kv_b, C, scale, None, 1)
Refuses: attention in other modules (a near-miss: an attention whose K/V do not come from
`expand_kv`), a `kv_b_proj` with a bias, shapes that do not line up with the latent layout.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from .graph_utils import example, finish, module_class, module_path, replace_with_op, source_functions
from .op_args import arg, call_args, set_args

# transformers classes whose forward expands the MLA latent in `expand_kv` before attention
MLA_ATTENTION_CLASSES = frozenset({"DeepseekV2Attention", "DeepseekV3Attention", "DeepseekV32Attention", "GlmMoeDsaAttention",
                                   "Glm4MoeLiteAttention", "AXK1Attention"})
EXPAND_FUNCTION = "expand_kv"
LINEARS = (torch._C._nn.linear,)


def _inside(node: fx.Node, path: str) -> bool:
    own = module_path(node)
    return own == path or own.startswith(path + ".")


def _match(gm: fx.GraphModule, attention: fx.Node) -> tuple[list[fx.Node], dict[str, Any]] | None:
    """(region, mla args without form) for one HF MLA attention call, or None."""
    path = module_path(attention)
    query = arg(attention, "query")
    if not (isinstance(query, fx.Node) and query.target is torch.cat):
        return None
    parts: Any = query.args[0]
    if not isinstance(parts, (list, tuple)) or len(parts) != 2:
        return None
    q_nope, q_rope = parts
    expand = [n for n in gm.graph.nodes if n.op in ("call_function", "call_method") and _inside(n, path)
              and EXPAND_FUNCTION in source_functions(n)]
    linears = [n for n in expand if n.target in LINEARS]
    broadcasts = [n for n in expand if n.op == "call_method" and n.target == "expand"]
    if len(linears) != 1 or len(broadcasts) != 1:
        return None
    up = linears[0]
    latent, weight = up.args[0], up.args[1]
    if (len(up.args) > 2 and up.args[2] is not None) or up.kwargs.get("bias") is not None:
        return None
    k_rope = broadcasts[0].args[0]
    shapes = [example(n).shape for n in (q_nope, q_rope, latent, k_rope, weight)]
    (_, heads, _, nope), (_, _, _, rope), (_, one, _, rank), (_, one_k, _, k_rope_dim), (rows, cols) = shapes
    if one != 1 or one_k != 1 or rope != k_rope_dim or cols != rank or rows % heads or rows // heads <= nope:
        return None
    region = [*expand, query, attention]
    return region, {"q_nope": q_nope, "q_rope": q_rope, "latent": latent, "k_rope": k_rope, "kv_b_weight": weight,
                    "context_len": arg(attention, "context_len"), "scale": arg(attention, "scale"), "indices": None}


def replace_mla(gm: fx.GraphModule, *, decode_query_len: int = 1) -> fx.GraphModule:
    mla = torch.ops.tensor_cast.mla_attention.default
    attention = torch.ops.tensor_cast.attention.default
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target is mla:  # emitted by a module swap: set how it is computed
            set_args(node, decode_query_len=decode_query_len)
        elif node.target is attention and module_class(node) in MLA_ATTENTION_CLASSES:
            match = _match(gm, node)
            if match is not None:
                region, args = match
                named = {**args, "decode_query_len": decode_query_len}
                replace_with_op(gm, region, mla, call_args(mla, **named), [node])
    return finish(gm)
