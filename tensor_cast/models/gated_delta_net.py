"""The swapped forward of transformers' gated DeltaNet layers (Qwen3-Next, Qwen3.5).

Keeps the module's own input projections (Qwen3-Next: fused `in_proj_qkvz` / `in_proj_ba` with
the head-grouped layout; Qwen3.5: `in_proj_qkv`, `in_proj_z`, `in_proj_b`, `in_proj_a`) and
`out_proj`, and replaces the conv1d + gating + delta-rule core (transformers' torch chunk loop) by
one `tensor_cast::gated_delta_net` op. The gated output norm, rmsnorm(o)·silu(z), is emitted as
the fused `rms_norm` and `act_mul` kernels with the module's own weight and epsilon (engines run
it fused; as ~10 eager elementwise ops it would dominate a decode step's launch count). Applied by
`module_swaps.py`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops.fused import act_mul, rms_norm
from ..ops.linear_attention import gated_delta_net


def _fused_projections(module: Any, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Qwen3-Next: q/k/v/z and b/a come out of two GEMMs, grouped by key head."""
    query, key, value, z, b, a = module.fix_query_key_value_ordering(module.in_proj_qkvz(hidden),
                                                                     module.in_proj_ba(hidden))
    batch, seq = hidden.shape[:2]
    mixed = torch.cat([x.reshape(batch, seq, -1) for x in (query, key, value)], dim=-1)
    return mixed, z, b, a


def _split_projections(module: Any, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Qwen3.5: one GEMM each for q/k/v, z, b and a."""
    return module.in_proj_qkv(hidden), module.in_proj_z(hidden), module.in_proj_b(hidden), module.in_proj_a(hidden)


class GatedDeltaNetForward:
    """Mixin: `forward` of a gated DeltaNet module with the core as one op."""

    tensor_cast_decode_query_len: int = 1

    def forward(self, hidden_states: torch.Tensor, cache_params: Any = None, attention_mask: Any = None,
                **kwargs: Any) -> torch.Tensor:
        module: Any = self
        project = _fused_projections if hasattr(module, "in_proj_qkvz") else _split_projections
        mixed, z, b, a = project(module, hidden_states)
        batch, seq = hidden_states.shape[:2]
        core = gated_delta_net(mixed, a, b, module.conv1d.weight, module.A_log, module.dt_bias, module.num_k_heads,
                               module.head_k_dim, module.num_v_heads, module.head_v_dim,
                               module.tensor_cast_decode_query_len)
        gate = module.norm
        normed = rms_norm(core.reshape(-1, module.head_v_dim), gate.weight, gate.variance_epsilon)
        core = act_mul(z.reshape(-1, module.head_v_dim), normed, "silu")
        return module.out_proj(core.reshape(batch, seq, -1))
