"""Cohere2 MoE's routed experts, swapped to dispatch as every other family's (module_swaps.py).

transformers' `Cohere2MoeExperts` stores fused 3-D weights (`gate_up_proj` (E, 2I, H), gate then up;
`down_proj` (E, H, I)) but loops over the experts hit with a one-hot mask of E + 1 classes instead of
dispatching through transformers' experts registry, so the capture cannot fold it. The swapped
forward keeps every parameter and module path and emits one `tensor_cast::routed_experts` over the
same weights, with the attributes `@use_experts_implementation` experts carry, so the MoE adapter's
checks and `replace_moe` treat it like every other family's experts. The router
(`Cohere2MoeTopKRouter`: top-k of the logits, then softmax over the k, or sigmoid with optional
renormalization) and the shared experts are transformers' own.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UnsupportedModelError, choices
from ..ops.moe import routed_experts


class Cohere2MoeExpertsForward(nn.Module):
    gate_up_proj: nn.Parameter  # Cohere2MoeExperts' own parameters and activation
    down_proj: nn.Parameter
    act_fn: nn.Module
    has_gate = True
    is_concatenated = True  # gate_up holds gate then up along dim 1
    is_transposed = False  # (E, 2I, H) and (E, H, I)
    has_bias = False

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        return routed_experts(hidden_states, top_k_index, top_k_weights, self.gate_up_proj, self.down_proj,
                              None, None, self._activation(), "concat", False)

    def _activation(self) -> str:
        name = ACTIVATION_BY_CLASS.get(type(self.act_fn).__name__)
        if name is None:
            raise UnsupportedModelError(f"Cohere2 MoE experts with activation {type(self.act_fn).__name__}; "
                                        f"supported: {choices(sorted(ACTIVATION_BY_CLASS))}")
        return name


# the experts' `act_fn` (transformers' ACT2FN instance) -> tensor_cast's gated-activation name
ACTIVATION_BY_CLASS = {"SiLUActivation": "silu", "SiLU": "silu"}
