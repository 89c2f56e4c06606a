"""fuse_activation_mul: `act(gate) * up` becomes one `tensor_cast::act_mul`.

Matches: a `mul` of an activation's output (SiLU, GELU, GELU-tanh, ReLU, sigmoid) used only by
that mul, and another tensor of the same shape — the gated MLP of every SwiGLU/GeGLU model.
Produces: `act_mul(gate, up, "silu")`: one kernel reading gate and up, writing the product
(vLLM's `silu_and_mul`), instead of an activation kernel and a multiply kernel.
Invariant after: the product keeps its shape and dtype; the activation node is gone.
Example:
    before: a = silu(g); y = a * u
    after:  y = act_mul(g, u, "silu")
Refuses: activations with other users, broadcasting muls, activations the op does not know.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from .graph_utils import finish, is_tensor_node, replace_with_op, shape_key

MULS = (operator.mul, torch.mul)


def activation_name(node: fx.Node) -> str | None:
    """The activation `node` applies (silu, gelu, gelu_tanh, relu, sigmoid), or None."""
    if node.op == "call_function":
        if node.target is F.silu:
            return "silu"
        if node.target is F.gelu:
            return "gelu_tanh" if node.kwargs.get("approximate", "none") == "tanh" else "gelu"
        if node.target in (F.relu, torch.relu):
            return "relu"
        if node.target is torch.sigmoid:
            return "sigmoid"
    if node.op == "call_method" and node.target in ("silu", "relu", "sigmoid"):
        return str(node.target)
    return None


def fuse_activation_mul(gm: fx.GraphModule) -> fx.GraphModule:
    op = torch.ops.tensor_cast.act_mul.default
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in MULS or len(node.args) != 2:
            continue
        if not all(is_tensor_node(a) for a in node.args):
            continue
        for act, up in (node.args, node.args[::-1]):
            name = activation_name(act)
            if name is None or len(act.users) != 1:
                continue
            gate = act.args[0]
            shapes = {shape_key(n) for n in (gate, up, node)}
            if len(shapes) != 1:
                continue
            replace_with_op(gm, [act, node], op, (gate, up, name), [node])
            break
    return finish(gm)
