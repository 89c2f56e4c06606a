"""fuse_add_rms_norm: a residual add feeding an RMSNorm becomes one `tensor_cast::add_rms_norm`.

Matches: `r = a + b` (two tensors of r's shape and dtype) whose result is the input of a
`tensor_cast::rms_norm` — the residual stream between sub-blocks, as in every pre-norm decoder.
Produces: `(normed, r) = add_rms_norm(a, b, weight, eps)`: one kernel reading a, b and the
weight and writing both the normed activations and the updated residual (vLLM's
`fused_add_rms_norm`).
Invariant after: no matched add remains; the residual's other users read the op's second
output; shapes and dtypes unchanged.
Example:
    before: h = residual + attn_out; x = rms_norm(h, w)   (h used again by the next add)
    after:  x, h = add_rms_norm(residual, attn_out, w)
A no-op dtype conversion between the add and the norm (Nemotron-H's `norm(h.to(norm.weight.dtype))`)
is looked through: it goes with the fused nodes.
Refuses: broadcasting adds, adds of a tensor and a scalar, norms fed by anything else.
Facts: the first layer's input norm has no add before it to fuse with (it reads the embedding):
it stands alone and runs once per step, not once per layer, so it moves to the phase of its
input (`NodeFacts.layer = None`) — every other layer's input norm runs fused with the previous
layer's trailing residual add, attributed to that layer.
"""

from __future__ import annotations

import operator

import torch
from torch import fx

from .eliminate_noop_views import is_noop
from .graph_utils import example, finish, is_tensor_node, replace_with_op, shape_key
from .node_facts import facts, update_facts
from .op_args import arg, call_args

ADDS = (operator.add, torch.add)


def fuse_add_rms_norm(gm: fx.GraphModule) -> fx.GraphModule:
    norm, fused = torch.ops.tensor_cast.rms_norm.default, torch.ops.tensor_cast.add_rms_norm.default
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != norm:
            continue
        add, between = arg(node, "x"), []
        if isinstance(add, fx.Node) and is_noop(add) and len(add.users) == 1:
            between, add = [add], add.args[0]
        if not (isinstance(add, fx.Node) and add.op == "call_function" and add.target in ADDS and len(add.args) == 2):
            continue
        a, b = add.args
        if not (is_tensor_node(a) and is_tensor_node(b)):
            continue
        out = example(add)
        if any(shape_key(t) != shape_key(add) or example(t).dtype != out.dtype for t in (a, b)):
            continue
        named = call_args(fused, x=a, residual=b, weight=arg(node, "weight"), eps=arg(node, "eps"))
        replace_with_op(gm, [add, *between, node], fused, named, [node, add])
    for node in gm.graph.nodes:
        source = arg(node, "x") if node.op == "call_function" and node.target == norm else None
        while isinstance(source, fx.Node) and is_noop(source):
            source = source.args[0]
        if isinstance(source, fx.Node) and facts(node).layer is not None and facts(source).layer is None:
            update_facts(node, layer=None, phase=facts(source).phase)
    return finish(gm)
