"""`tensor_cast::attention`: KV-cache-aware attention as one op.

Replaces the model's attention kernel (SDPA / FlashAttention / eager matmul-softmax-matmul) at
capture, through transformers' attention-function registry. It carries everything the cost needs:
query/key/value shapes (GQA: fewer KV heads), the number of tokens already cached per sequence
(`context_len`: a SymInt, so no cache is ever materialized), causality, the sliding window or the
local-attention chunk, and attention sinks.

The reference implementation attends over the keys passed in (the cached tokens are modelled,
not materialized), which is what `opcheck` and numeric pass tests exercise.
"""

from __future__ import annotations

import math

import torch


@torch.library.custom_op("tensor_cast::attention", mutates_args=())
def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    context_len: int,
    scale: float,
    causal: bool,
    window: int,
    sinks: torch.Tensor | None,
    chunk: int = 0,
) -> torch.Tensor:
    """q (B, Hq, S, D), k (B, Hkv, S, D), v (B, Hkv, S, Dv) -> out (B, S, Hq, Dv).

    `context_len` tokens per sequence are already in the KV cache (0 for a fresh prefill);
    `window` > 0 limits each query to the last `window` keys; `sinks` (Hq,) are gpt-oss style
    learned softmax sinks; `chunk` > 0 limits each query to the keys of its own aligned chunk of
    `chunk` positions (Llama 4's chunked local attention).
    """
    q_len, k_len = query.shape[2], key.shape[2]
    rep = query.shape[1] // key.shape[1]
    k = key.repeat_interleave(rep, dim=1).float()
    v = value.repeat_interleave(rep, dim=1).float()
    scores = torch.matmul(query.float(), k.transpose(-1, -2)) * scale
    q_pos = torch.arange(q_len).unsqueeze(1) + (k_len - q_len)
    k_pos = torch.arange(k_len).unsqueeze(0)
    allowed = torch.ones(q_len, k_len, dtype=torch.bool)
    if causal:
        allowed &= k_pos <= q_pos
    if window > 0:
        allowed &= k_pos > q_pos - window
    if chunk > 0:
        allowed &= (k_pos // chunk) == (q_pos // chunk)
    scores = scores.masked_fill(~allowed, -math.inf)
    if sinks is not None:
        sink = sinks.float().reshape(1, -1, 1, 1).expand(scores.shape[0], -1, q_len, 1)
        probs = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]
    else:
        probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, v).to(query.dtype)
    return out.transpose(1, 2).contiguous()


@attention.register_fake
def _attention_fake(query, key, value, context_len, scale, causal, window, sinks, chunk=0):
    batch, heads, q_len, _ = query.shape
    return query.new_empty((batch, q_len, heads, value.shape[-1]))
