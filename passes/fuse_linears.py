"""fuse_linears: linears that read the same input in the same module become one GEMM.

Matches: two or more `linear(x, W_i[, b_i])` nodes with the same input node `x`, in the same
parent module (q/k/v projections of an attention module; gate/up projections of an MLP;
DeepSeek's q_a/kv_a projections), with weights of one dtype and all-or-none biases.
Produces: `fused_linear(x, [W_1, ...], [b_1, ...]) -> [y_1, ...]`: one GEMM with N = Σ N_i,
reading x once (vLLM's QKVParallelLinear / MergedColumnParallelLinear).
Invariant after: each y_i keeps its shape and dtype; no two linears of one parent module share
an input.
Example:
    before: q = linear(h, Wq); k = linear(h, Wk); v = linear(h, Wv)
    after:  q, k, v = fused_linear(h, [Wq, Wk, Wv], [None, None, None])
Refuses: linears in different modules (a MoE router and a shared expert read the same x but run
as separate kernels), mixed weight dtypes, mixed bias presence.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import fx

from .graph_utils import example, finish, module_path, replace_with_op

LINEARS = (torch._C._nn.linear,)


def _parent(node: fx.Node) -> str:
    return module_path(node).rsplit(".", 1)[0]


def fuse_linears(gm: fx.GraphModule) -> fx.GraphModule:
    op = torch.ops.tensor_cast.fused_linear.default
    groups: dict[tuple[fx.Node, str], list[fx.Node]] = defaultdict(list)
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in LINEARS and isinstance(node.args[0], fx.Node):
            groups[(node.args[0], _parent(node))].append(node)
    for (x, _), linears in groups.items():
        if len(linears) < 2:
            continue
        weights = [n.args[1] for n in linears]
        biases = [n.args[2] if len(n.args) > 2 else n.kwargs.get("bias") for n in linears]
        if len({example(w).dtype for w in weights}) != 1 or len({b is None for b in biases}) != 1:
            continue
        fused = replace_with_op(gm, linears, op, (x, weights, biases), linears)
        if fused is not None:  # the fused GEMM belongs to the parent module, not to its last projection
            for node in (fused, *fused.users):
                stack = dict(node.meta.get("nn_module_stack") or {})
                if stack:
                    stack.pop(next(reversed(stack)))
                    node.meta["nn_module_stack"] = stack
    return finish(gm)
