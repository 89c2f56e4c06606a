"""A tiny MoE graph for pass tests: one `tensor_cast::moe` block and a residual add, and the
node views the expert-parallel pass tests compare."""

from __future__ import annotations

import torch
from torch import nn

import tensor_cast.ops  # noqa: F401  (registers torch.ops.tensor_cast)

tc = torch.ops.tensor_cast


class TinyMoE(nn.Module):
    """A rank's MoE block as `replace_moe` leaves it: one tensor_cast::moe, a residual add after."""

    def __init__(self, hidden=16, experts=8, inter=8, scheme="none"):
        super().__init__()
        self.router = nn.Parameter(torch.randn(experts, hidden))
        self.gate_up = nn.Parameter(torch.randn(experts, 2 * inter, hidden) * 0.2)
        self.down = nn.Parameter(torch.randn(experts, hidden, inter) * 0.2)
        self.scheme = scheme

    def forward(self, x):
        h = x * 2
        y = tc.moe.default(h, self.router, [], self.gate_up, self.down, None, None, [], [], 2, "softmax", "silu", "concat",
                   False, self.scheme)
        return x + y


def call_targets(gm):
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def node_values(gm):
    return {n.name: (tuple(n.meta["example_value"].shape), n.meta["example_value"].dtype)
            for n in gm.graph.nodes if isinstance(n.meta.get("example_value"), torch.Tensor)}
