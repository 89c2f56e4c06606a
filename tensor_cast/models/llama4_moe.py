"""Llama 4's MoE block, swapped to route tokens (module_swaps.py).

transformers' `Llama4TextMoe` computes every expert for every token: it repeats the hidden states
E times, scales each copy by its router score (zero for the experts a token did not pick) and runs
`Llama4TextExperts` as two batched matmuls over all E copies — E / k times the work of the top-k
experts that serving engines run (vLLM's fused MoE with `apply_router_weight_on_input`). The
swapped forwards keep every parameter and module path and do what the engines do:
- `Llama4MoeForward`: the router GEMM (`router.weight`, E x H), top-k of the logits, the sigmoid of
  the k picked logits (Llama 4 scores after the top-k), the routed experts on the top-k, plus the
  shared expert; it returns (output in the input's shape, router logits);
- `Llama4ExpertsForward`: one `tensor_cast::routed_experts` over the fused 3-D weights, which
  Llama 4 stores transposed (`gate_up_proj` (E, H, 2I), gate then up; `down_proj` (E, I, H)), with
  the attributes transformers' `@use_experts_implementation` experts carry, so the MoE adapter's
  checks and `replace_moe` treat it like every other family's experts.
The router weight scales the expert's output here and its input in Llama 4: the same kernels and
bytes, one elementwise product either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.moe import routed_experts


class Llama4ExpertsForward(nn.Module):
    gate_up_proj: nn.Parameter  # Llama4TextExperts' own parameters
    down_proj: nn.Parameter
    has_gate = True
    is_concatenated = True  # gate_up holds gate then up along its last dim
    is_transposed = True  # (E, H, 2I) and (E, I, H)
    has_bias = False

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        # SiLU: the only activation Llama 4 configs use (the adapter refuses any other hidden_act)
        return routed_experts(hidden_states, top_k_index, top_k_weights, self.gate_up_proj, self.down_proj,
                              None, None, "silu", "concat", True)


class Llama4MoeForward(nn.Module):
    hidden_dim: int  # Llama4TextMoe's own attributes and modules
    top_k: int
    router: nn.Linear
    experts: nn.Module
    shared_expert: nn.Module

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = hidden_states.reshape(-1, self.hidden_dim)
        logits = F.linear(hidden, self.router.weight)
        top_values, top_index = torch.topk(logits, self.top_k, dim=1)
        weights = torch.sigmoid(top_values.float()).to(hidden.dtype)
        out = self.shared_expert(hidden) + self.experts(hidden, top_index, weights)
        return out.view(hidden_states.shape), logits
