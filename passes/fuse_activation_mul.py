"""fuse_activation_mul: `act(gate) * up` becomes one `tensor_cast::act_mul`.

Matches: a `mul` of an activation's output (SiLU, GELU, GELU-tanh, ReLU, sigmoid) used only by
that mul, and another tensor of the same shape — the gated MLP of every SwiGLU/GeGLU model.
Produces: `act_mul(gate, up, "silu")`: one kernel reading gate and up, writing the product
(vLLM's `silu_and_mul`), instead of an activation kernel and a multiply kernel.
Invariant after: the product keeps its shape and dtype; the activation node is gone.
Example:
    before: a = silu(g); y = a * u
    after:  y = act_mul(g, u, "silu")
Also absorbs the casts of a gated MLP evaluated in float32 (`(act(g.float()) * u.float()).to(g.dtype)`,
Beam's MLP): both upcasts, used only there, and the cast back become part of the one `act_mul` of
the bf16 inputs, which computes in float32 and writes their dtype as the engines' kernel does.
    before: g32 = g.float(); u32 = u.float(); y = act_mul(g32, u32, "silu").to(bf16)
    after:  y = act_mul(g, u, "silu")
Refuses: activations with other users, broadcasting muls, activations the op does not know; a cast
with other users or one that does not return to the inputs' dtype.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from .graph_utils import example, finish, is_tensor_node, replace_with_op, shape_key

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
    _absorb_float32_casts(gm, op)
    return finish(gm)


CASTS = ("float", "to", "type_as", "bfloat16", "half")


def _upcast_source(node: fx.Node) -> fx.Node | None:
    """x where `node` is x cast up to float32 and used once, else None."""
    if node.op != "call_method" or node.target not in CASTS or len(node.users) != 1:
        return None
    source = node.args[0]
    if not isinstance(source, fx.Node) or not is_tensor_node(source) or example(node).dtype != torch.float32:
        return None
    return source if example(source).dtype != torch.float32 else None


def _absorb_float32_casts(gm: fx.GraphModule, op: object) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not op or len(node.users) != 1:
            continue
        gate, up, name = node.args
        sources = [_upcast_source(a) for a in (gate, up)]
        down = next(iter(node.users))
        if None in sources or down.op != "call_method" or down.target not in CASTS:
            continue
        replace_with_op(gm, [gate, up, node, down], op, (sources[0], sources[1], name), [down])
