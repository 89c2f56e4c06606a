"""Multi-head latent attention (DeepSeek MLA) and the DeepSeek sparse-attention indexer, as ops.

- `mla_attention(q_nope, q_rope, latent, k_rope, kv_b_weight, context_len, scale, indices,
  decode_query_len)`: attention over the compressed KV cache. What is cached per token is the
  latent (`kv_lora_rank` values, shared by all heads) and one rope key (`qk_rope_head_dim`);
  `kv_b_weight` (H·(d_nope + d_v), kv_lora_rank) up-projects the latent into per-head no-rope
  keys and values. How a serving engine computes it (the MLA form: `"absorbed"`, the
  up-projection folded into the query and the output, multi-query attention over the latent,
  FlashMLA; `"expanded"`, the latent up-projected into per-head K/V, then multi-head attention;
  `"auto"`, absorbed for steps of at most `decode_query_len` tokens per sequence and whenever
  `indices` are given (engines run sparse MLA absorbed at every step length), expanded otherwise) changes the cost, not the result nor the graph: it is a cost knob
  (`CostKnobs.mla_form`, backends/formulas/registry.py), not an argument. `indices` (B, S, top-k), when given,
  are the cache positions each query attends (DeepSeek sparse attention); `context_len` tokens
  per sequence are already cached (a SymInt: no cache is materialized).
- `dsa_indexer(q, k, weights, context_len, topk)`: DeepSeek-V3.2's lightning indexer: per query,
  ReLU(q·k) scores over every cached and new key, weighted-summed over the indexer heads, and
  the `topk` best positions returned (-1 where fewer keys exist).

Reference implementations attend over the keys passed in (the modelled cache is not
materialized), which is what `opcheck` and numeric pass tests exercise.
"""

from __future__ import annotations

import math

import torch

MLA_FORMS = ("auto", "absorbed", "expanded")


@torch.library.custom_op("tensor_cast::mla_attention", mutates_args=())
def mla_attention(
    q_nope: torch.Tensor,
    q_rope: torch.Tensor,
    latent: torch.Tensor,
    k_rope: torch.Tensor,
    kv_b_weight: torch.Tensor,
    context_len: int,
    scale: float,
    indices: torch.Tensor | None,
    decode_query_len: int,
) -> torch.Tensor:
    """q_nope (B, H, S, dn), q_rope (B, H, S, dr), latent (B, 1, S, r), k_rope (B, 1, S, dr),
    kv_b_weight (H·(dn + dv), r) -> out (B, S, H, dv)."""
    batch, heads, q_len, nope = q_nope.shape
    k_len = latent.shape[2]
    v_dim = kv_b_weight.shape[0] // heads - nope
    kv = torch.matmul(latent.float(), kv_b_weight.float().t())  # (B, 1, S, H·(dn + dv))
    kv = kv.view(batch, k_len, heads, nope + v_dim).transpose(1, 2)
    k_nope, value = kv.split([nope, v_dim], dim=-1)
    scores = (torch.matmul(q_nope.float(), k_nope.transpose(-1, -2))
              + torch.matmul(q_rope.float(), k_rope.float().transpose(-1, -2))) * scale
    q_pos = torch.arange(q_len).unsqueeze(1) + (k_len - q_len)
    allowed = torch.arange(k_len).unsqueeze(0) <= q_pos
    allowed = allowed.expand(batch, 1, q_len, k_len)
    if indices is not None:
        chosen = torch.zeros(batch, q_len, k_len + 1, dtype=torch.bool)
        chosen.scatter_(-1, torch.where(indices < 0, k_len, indices).long(), True)
        allowed = allowed & chosen[..., :k_len].unsqueeze(1)
    scores = scores.masked_fill(~allowed, -math.inf)
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, value).to(q_nope.dtype)
    return out.transpose(1, 2).contiguous()


@mla_attention.register_fake
def _mla_attention_fake(q_nope, q_rope, latent, k_rope, kv_b_weight, context_len, scale, indices, decode_query_len):
    batch, heads, q_len, nope = q_nope.shape
    v_dim = kv_b_weight.shape[0] // heads - nope
    return q_nope.new_empty((batch, q_len, heads, v_dim))


@torch.library.custom_op("tensor_cast::dsa_indexer", mutates_args=())
def dsa_indexer(q: torch.Tensor, k: torch.Tensor, weights: torch.Tensor, context_len: int, topk: int) -> torch.Tensor:
    """q (B, S, Hi, Di), k (B, S, Di), weights (B, S, Hi) -> indices (B, S, topk) int32."""
    batch, q_len, _, _ = q.shape
    k_len = k.shape[1]
    scores = torch.relu(torch.einsum("bshd,btd->bsht", q.float(), k.float()))
    index_scores = torch.einsum("bsh,bsht->bst", weights.float(), scores)
    q_pos = torch.arange(q_len).unsqueeze(1) + (k_len - q_len)
    allowed = torch.arange(k_len).unsqueeze(0) <= q_pos
    index_scores = index_scores.masked_fill(~allowed, -math.inf)
    keep = min(topk, k_len)
    values, chosen = index_scores.topk(keep, dim=-1)
    chosen = torch.where(torch.isinf(values), -1, chosen)
    out = torch.full((batch, q_len, topk), -1, dtype=torch.int32)
    out[..., :keep] = chosen.to(torch.int32)
    return out


@dsa_indexer.register_fake
def _dsa_indexer_fake(q, k, weights, context_len, topk):
    return q.new_empty((q.shape[0], q.shape[1], topk), dtype=torch.int32)
