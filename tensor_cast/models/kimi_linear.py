"""The swapped forwards of Kimi-Linear's two token mixers (`kimi_linear`).

- **KDA** (`KimiLinearDeltaAttention`): keeps the module's q / k / v projections, its low-rank
  forget gate (`f_a_proj` -> `f_b_proj`), `b_proj`, the low-rank output gate (`g_a_proj` ->
  `g_b_proj`) and `o_proj`; the short conv + gate + delta-rule core (transformers' torch chunk
  loop, or a hub kernel) becomes one `tensor_cast::kimi_delta_attention` op; the gated output
  norm, rmsnorm(o)·sigmoid(gate), is emitted as the fused `rms_norm` and `act_mul` kernels with the
  module's own weight and epsilon (engines run it as one fused kernel: FLA's `FusedRMSNormGated`).
- **MLA without positions** (`KimiLinearAttention`): DeepSeek's latent attention with no RoPE
  (the checkpoint's `mla_use_nope`); the rope slice of q and the shared rope key are still
  projected and cached. Emits `tensor_cast::mla_attention` over the latent cache directly (its
  forward calls `expand_kv` with no rotation, which `replace_mla` would match only through a
  `cat(q_nope, q_rope)` query); `replace_mla` sets its `decode_query_len` as for every
  swapped MLA op.

The cached context length comes from the carrier tensor the capture threads through the forward
kwargs, as for every other attention. Applied by `module_swaps.py`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops.fused import act_mul, rms_norm
from ..ops.linear_attention import kimi_delta_attention
from ..ops.mla import mla_attention
from .dsa_attention import context_length


class KimiDeltaAttentionForward:
    """Mixin: `forward` of a KDA module with the conv + gate + delta rule as one op."""

    tensor_cast_decode_query_len: int = 1

    def forward(self, hidden_states: torch.Tensor, cache: Any = None, attention_mask: Any = None,
                **kwargs: Any) -> torch.Tensor:
        module: Any = self
        batch, seq = hidden_states.shape[:2]
        gate = module.forget_gate
        core = kimi_delta_attention(
            module.q_proj(hidden_states), module.k_proj(hidden_states), module.v_proj(hidden_states),
            gate.f_b_proj(gate.f_a_proj(hidden_states)), module.b_proj(hidden_states), module.conv1d.weight,
            gate.A_log, gate.dt_bias, module.num_heads, module.head_dim, module.tensor_cast_decode_query_len)
        output_gate = module.g_b_proj(module.g_a_proj(hidden_states))
        norm = module.o_norm
        normed = rms_norm(core.reshape(-1, module.head_dim), norm.weight, norm.variance_epsilon)
        out = act_mul(output_gate.reshape(-1, module.head_dim), normed, norm.activation)
        return module.o_proj(out.reshape(batch, seq, -1))


class NoPositionMLAForward:
    """Mixin: MLA with no rotary embedding, as one `mla_attention` over the latent cache."""

    def forward(self, hidden_states: torch.Tensor, attention_mask: Any = None, cache: Any = None,
                **kwargs: Any) -> tuple[Any, None]:
        module: Any = self
        batch, seq = hidden_states.shape[:-1]
        nope, rope = module.qk_nope_head_dim, module.qk_rope_head_dim
        if module.q_lora_rank is None:
            q = module.q_proj(hidden_states)
        else:
            q = module.q_b_proj(module.q_a_layernorm(module.q_a_proj(hidden_states)))
        q = q.view(batch, seq, -1, module.qk_head_dim).transpose(1, 2)
        q_nope, q_rope = torch.split(q, [nope, rope], dim=-1)
        latent, k_rope = torch.split(module.kv_a_proj_with_mqa(hidden_states), [module.kv_lora_rank, rope], dim=-1)
        latent = module.kv_a_layernorm(latent).view(batch, 1, seq, module.kv_lora_rank)
        k_rope = k_rope.view(batch, 1, seq, rope)
        out = mla_attention(q_nope, q_rope, latent, k_rope, module.kv_b_proj.weight,
                            context_length(module, kwargs), module.scaling, None, 1)
        return module.o_proj(out.reshape(batch, seq, -1)), None
