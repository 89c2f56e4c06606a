"""The swapped forwards of DeepSeek sparse attention (DeepSeek-V3.2, GLM-5 `glm_moe_dsa`).

The attention keeps its own projections and norms (q_a / q_b, kv_a with its norm, o_proj) and
its family's RoPE helper (so `fuse_rope` still fuses it), then:
- the indexer (`DSAIndexerForward`, its own projections wq_b / wk / k_norm / weights_proj and
  RoPE kept) becomes one `tensor_cast::dsa_indexer` op scoring every cached and new key;
- the attention becomes `tensor_cast::mla_attention` on the latent with the indexer's top-k
  positions (`decode_query_len` is set later by the `replace_mla` pass).

The cached context length comes from the carrier tensor the capture threads through the forward
kwargs, as for every other attention. Applied by `module_swaps.py`.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from ..errors import CaptureError
from ..ops.mla import dsa_indexer, mla_attention


def family_function(module: Any, name: str) -> Any:
    """A helper (RoPE) from the module's own transformers modeling file."""
    return getattr(sys.modules[type(module).__module__], name)


def _original_name(module: Any) -> str:
    """The transformers class name of a swapped module."""
    return type(module).__name__.removeprefix("TensorCast")


def context_length(module: Any, kwargs: dict[str, Any]) -> Any:
    """The cached context length a swapped attention reads from the capture's carrier kwarg."""
    from ..capture.attention_interface import CONTEXT_KWARG  # capture imports the build, which imports this

    carrier = kwargs.get(CONTEXT_KWARG)
    if carrier is None:
        raise CaptureError(f"{type(module).__name__} was called without the context carrier; "
                           "its cache cannot be modelled")
    return carrier.shape[0]


class DSAIndexerForward:
    """Mixin: the lightning indexer as q / k / head-weight projections + one top-k op."""

    # the indexer's RoPE helper per family: DeepSeek-V3.2 half-split, GLM-5 interleaved
    ROPE = {"DeepseekV32Indexer": "apply_rotary_pos_emb", "GlmMoeDsaIndexer": "apply_rotary_pos_emb_interleave"}

    def forward(self, hidden_states: torch.Tensor, q_resid: torch.Tensor, position_embeddings: Any,
                context_len: Any) -> torch.Tensor:
        module: Any = self
        batch, seq, _ = hidden_states.shape
        rope_dim = module.qk_rope_head_dim
        q = module.wq_b(q_resid).view(batch, seq, module.n_heads, module.head_dim)
        q_rot, q_pass = torch.split(q, [rope_dim, module.head_dim - rope_dim], dim=-1)
        k = module.k_norm(module.wk(hidden_states)).unsqueeze(2)
        k_rot, k_pass = torch.split(k, [rope_dim, module.head_dim - rope_dim], dim=-1)
        rope = family_function(module, self.ROPE[_original_name(module)])
        cos, sin = position_embeddings
        q_rot, k_rot = rope(q_rot, k_rot, cos, sin, unsqueeze_dim=2)
        q = torch.cat([q_rot, q_pass], dim=-1)
        k = torch.cat([k_rot, k_pass], dim=-1).squeeze(2)
        # per-head weights with both scalings folded in (transformers applies them to the scores)
        weights = module.weights_proj(hidden_states) * (module.n_heads**-0.5 * module.softmax_scale)
        return dsa_indexer(q, k, weights, context_len, module.index_topk)


class DSAAttentionForward:
    """Mixin: MLA with the indexer's top-k, as `dsa_indexer` + `mla_attention`."""

    # GLM-5 layers return (output, weights, top-k indices) so a following layer may reuse them
    RETURNS_INDICES = frozenset({"GlmMoeDsaAttention"})

    def forward(self, hidden_states: torch.Tensor, position_embeddings: Any, attention_mask: Any = None,
                past_key_values: Any = None, position_ids: Any = None, prev_topk_indices: Any = None,
                **kwargs: Any) -> tuple[Any, ...]:
        module: Any = self
        batch, seq = hidden_states.shape[:-1]
        nope, rope_dim = module.qk_nope_head_dim, module.qk_rope_head_dim
        q_resid = module.q_a_layernorm(module.q_a_proj(hidden_states))
        q = module.q_b_proj(q_resid).view(batch, seq, -1, module.qk_head_dim).transpose(1, 2)
        q_nope, q_rot = torch.split(q, [nope, rope_dim], dim=-1)
        latent, k_rot = torch.split(module.kv_a_proj_with_mqa(hidden_states), [module.kv_lora_rank, rope_dim], dim=-1)
        latent = module.kv_a_layernorm(latent).view(batch, 1, seq, module.kv_lora_rank)
        k_rot = k_rot.view(batch, 1, seq, rope_dim)
        cos, sin = position_embeddings
        q_rot, k_rot = family_function(module, "apply_rotary_pos_emb_interleave")(q_rot, k_rot, cos, sin)
        context = context_length(module, kwargs)
        indices = module.indexer(hidden_states, q_resid, position_embeddings, context)
        out = mla_attention(q_nope, q_rot, latent, k_rot, module.kv_b_proj.weight, context, module.scaling, indices, 1)
        out = module.o_proj(out.reshape(batch, seq, -1))
        if _original_name(module) in self.RETURNS_INDICES:
            return out, None, indices
        return out, None
