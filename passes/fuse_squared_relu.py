"""fuse_squared_relu: `square(relu(x))` becomes one `tensor_cast::activation(x, "relu2")`.

Matches: a square of a ReLU's output (`torch.square`, `Tensor.square`, `pow(_, 2)`, `r * r`) where
the ReLU has no other user — transformers' `relu2` (`ReLUSquaredActivation`: Nemotron-H's MLP and
shared-expert blocks).
Produces: `activation(x, "relu2")`: one kernel reading x and writing relu(x)² (vLLM runs
`ReLUSquaredActivation` under torch.compile, which fuses the two), instead of two streaming kernels.
Invariant after: the result keeps its shape and dtype; the ReLU node is gone.
Example:
    before: r = relu(x); y = square(r)
    after:  y = activation(x, "relu2")
Refuses: a ReLU with other users, a power other than 2.
"""

from __future__ import annotations

import operator

import torch
from torch import fx

from .fuse_activation_mul import MULS, activation_name
from .graph_utils import finish, replace_with_op

SQUARES = (torch.square,)
POWS = (torch.pow, operator.pow)


def _squares(node: fx.Node) -> bool:
    """`node` squares its first argument."""
    args, fn, method = node.args, node.op == "call_function", node.op == "call_method"
    if len(args) == 1:
        return (fn and node.target in SQUARES) or (method and node.target == "square")
    if len(args) == 2:
        powers = (fn and node.target in POWS) or (method and node.target == "pow")
        return bool((powers and args[1] == 2) or (fn and node.target in MULS and args[0] is args[1]))
    return False


def _squared_relu(node: fx.Node) -> fx.Node | None:
    """The ReLU node `node` squares, or None."""
    if not _squares(node):
        return None
    base = node.args[0]
    return base if isinstance(base, fx.Node) and activation_name(base) == "relu" and len(base.users) == 1 else None


def fuse_squared_relu(gm: fx.GraphModule) -> fx.GraphModule:
    op = torch.ops.tensor_cast.activation.default
    for node in list(gm.graph.nodes):
        relu = _squared_relu(node)
        if relu is None or not relu.args or not isinstance(relu.args[0], fx.Node) or relu.kwargs:
            continue
        replace_with_op(gm, [relu, node], op, (relu.args[0], "relu2"), [node])
    return finish(gm)
