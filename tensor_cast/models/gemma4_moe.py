"""The swapped forwards of Gemma 4's MoE layers (`gemma4_text` with `enable_moe_block`).

Gemma 4's MoE layers run a routed-experts branch beside the dense MLP, both off the same residual:
the router (a weightless RMS norm, a learned scale, a softmax top-k renormalized and scaled per
expert) and the experts hang off the decoder layer itself, with their own pre / post norms, so
there is no MoE block for `replace_moe` to fold. The swap keeps the layer's computation and emits
the branch as one `tensor_cast::moe` op from inside the experts module (so tensor parallelism's
all-reduce finds the experts' partial sums there): routed on the experts' normalized input — the
router reads the residual before that norm, a different activation of the same shape, so the
router GEMM costs the same — with the router's scale and per-expert scale as its extra inputs.
The dense MLP stays the layer's own module (costed as its GEMMs; in the spec, the MoE's one
shared expert of `intermediate_size`, which it computes like). Layers without the MoE block keep
transformers' forward. Applied by `module_swaps.py`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops.moe import moe

ACTIVATION = {"gelu_pytorch_tanh": "gelu_tanh"}


class Gemma4MoELayerForward:
    """Mixin: a Gemma 4 decoder layer whose routed-experts branch is one `moe` op."""

    def forward(self, hidden_states: torch.Tensor, per_layer_input: Any = None, shared_kv_states: Any = None,
                position_embeddings: Any = None, attention_mask: Any = None, position_ids: Any = None,
                cache: Any = None, **kwargs: Any) -> torch.Tensor:
        layer: Any = self
        if not layer.enable_moe_block:
            return super().forward(hidden_states, per_layer_input, shared_kv_states, position_embeddings,  # type: ignore[misc]
                                   attention_mask, position_ids, cache, **kwargs)
        residual = hidden_states
        attended, _ = layer.self_attn(hidden_states=layer.input_layernorm(hidden_states),
                                      position_embeddings=position_embeddings, attention_mask=attention_mask,
                                      shared_kv_states=shared_kv_states, position_ids=position_ids, cache=cache,
                                      **kwargs)
        hidden_states = residual + layer.post_attention_layernorm(attended)
        residual = hidden_states
        dense = layer.post_feedforward_layernorm_1(layer.mlp(layer.pre_feedforward_layernorm(hidden_states)))
        flat = residual.reshape(-1, residual.shape[-1])
        routed = layer.experts(layer.pre_feedforward_layernorm_2(flat), layer.router)
        routed = layer.post_feedforward_layernorm_2(routed.view_as(residual))
        hidden_states = residual + layer.post_feedforward_layernorm(dense + routed)
        return hidden_states * layer.layer_scalar


class Gemma4ExpertsForward:
    """Mixin: Gemma 4's routed experts, given the layer's router, as one `tensor_cast::moe`."""

    def forward(self, hidden_states: torch.Tensor, router: Any) -> torch.Tensor:
        experts: Any = self
        config = router.config
        activation = ACTIVATION.get(str(config.hidden_activation), str(config.hidden_activation))
        return moe(hidden_states, router.proj.weight, [router.scale, router.per_expert_scale], experts.gate_up_proj,
                   experts.down_proj, None, None, [], [], int(config.top_k_experts), "softmax", activation, "concat",
                   False, "none")
