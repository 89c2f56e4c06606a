"""fuse_allreduce_add_rms_norm: a TP all-reduce feeding a residual add + RMSNorm becomes one
`tensor_cast::all_reduce_add_rms_norm`, as engines with all-reduce fusion launch it.

Matches: `(normed, h) = add_rms_norm(a, b, w, eps)` (what `fuse_add_rms_norm` leaves) where a or
b is `all_reduce(x, n, nodes, "tp")` whose only user is that norm — the row-parallel output of
every attention and MLP sub-block under tensor parallelism, reduced, added to the residual
stream and normalized for the next sub-block.
Produces: `(normed, h) = all_reduce_add_rms_norm(x, residual, w, eps, n, nodes, "tp")`: one
kernel (TensorRT-LLM `AllReduce` with `AllReduceFusionOp.RESIDUAL_RMS_NORM`; FlashInfer's
`allreduce_fusion` in vLLM with `pass_config.fuse_allreduce_rms` and in SGLang with
`--enable-flashinfer-allreduce-fusion`), costed as the all-reduce's communication plus the
norm's memory traffic without the round trip of the reduced tensor
(`backends/formulas/collectives.py`).
Invariant after: no `add_rms_norm` reads a TP all-reduce that nothing else reads; as many fused
ops as matches; the norm's outputs (users, shapes, dtypes) unchanged. Checked after the rewrite:
raises if a matching pair is left.
Example (tp=4, a Llama layer's o_proj):
    before: o = all_reduce(linear(attn, Wo), 4, 1, "tp"); x, h = add_rms_norm(h, o, w, eps)
    after:  x, h = all_reduce_add_rms_norm(linear(attn, Wo), h, w, eps, 4, 1, "tp")
Refuses: all-reduces of another scope (EP / DP), all-reduces read by anything else (the
embedding's, whose first norm has no add; a sub-block output the model also reads elsewhere),
plain `rms_norm` (no residual: TensorRT-LLM's fusion op needs one).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from .graph_utils import fake_result, finish
from .node_facts import derive_facts
from .op_args import arg


def _tp_all_reduce(node: Any, norm: fx.Node) -> bool:
    return (isinstance(node, fx.Node) and node.op == "call_function"
            and node.target == torch.ops.tensor_cast.all_reduce.default
            and arg(node, "scope") == "tp" and list(node.users) == [norm])


def fuse_allreduce_add_rms_norm(gm: fx.GraphModule) -> fx.GraphModule:
    add_norm = torch.ops.tensor_cast.add_rms_norm.default
    fused = torch.ops.tensor_cast.all_reduce_add_rms_norm.default
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != add_norm:
            continue
        a, b = arg(node, "x"), arg(node, "residual")
        reduce, other = (a, b) if _tp_all_reduce(a, node) else (b, a) if _tp_all_reduce(b, node) else (None, None)
        if reduce is None:
            continue
        x, group_size, nodes, scope = (arg(reduce, k) for k in ("x", "group_size", "nodes", "scope"))
        args = (x, other, arg(node, "weight"), arg(node, "eps"), group_size, nodes, scope)
        result = fake_result(gm, fused, args)
        with gm.graph.inserting_before(node):
            new = gm.graph.call_function(fused, args)
        new.meta.update({k: v for k, v in node.meta.items() if k in ("nn_module_stack", "stack_trace")})
        new.meta["example_value"] = result
        new.meta["fused_from"] = [reduce.name, node.name]
        derive_facts(new, node)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        gm.graph.erase_node(reduce)
    left = [n.name for n in gm.graph.nodes if n.op == "call_function" and n.target == add_norm
            and any(_tp_all_reduce(arg(n, k), n) for k in ("x", "residual"))]
    if left:
        raise RuntimeError(f"fuse_allreduce_add_rms_norm: add_rms_norm {left[:3]} still read a TP all_reduce")
    return finish(gm)
