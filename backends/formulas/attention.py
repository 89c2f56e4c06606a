"""Attention cost rules: the KV-cache-aware `tensor_cast::attention`, and plain SDPA.

Counted as the fused kernels serving engines run (FlashAttention / paged decode attention):

- FLOPs: 2·d (QKᵀ) + 2·dv (PV) per (query, attended key) pair per query head, on tensor cores,
  plus ~4 vector FLOPs per score (scale, max, exp, sum). A causal query i of a chunk of S new
  tokens after C cached ones attends C + i + 1 keys (so a fresh prefill counts S(S+1)/2, half the
  score matrix); a sliding window W caps that at W.
- Bytes: q read once; each KV head's keys/values read once (GQA: per KV head, not per query
  head) over the tokens the chunk touches — min(C + S, W + S - 1) with a window; the output
  written once; plus the cache append (the S new tokens' K/V read and written into the cache,
  a second kernel in vLLM: `reshape_and_cache`).
- State: the KV cache held after the step, B·min(W, C + S)·Hkv·(d + dv) elements.
- Chunked local attention (Llama 4, chunk c): a query at position p attends to the keys of its own
  aligned chunk, p mod c + 1 of them; the step touches the keys from the first query's chunk start,
  C mod c + S; the cache holds the last token's chunk, (C + S - 1) mod c + 1 tokens (engines free the
  blocks of finished chunks: vLLM's ChunkedLocalAttentionSpec). The kernel runs as full attention over
  the touched keys (vLLM splits every chunk into a local "virtual" sequence).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ...sizes import smax, smin
from ..counts import Counts
from ..kernels import AttentionShape
from .matmul import gemm_precision
from .registry import OpCall, register

SOFTMAX_FLOPS_PER_SCORE = 4


def attended_keys(q_len: Any, context_len: Any, *, causal: bool, window: int) -> Any:
    """Sum over the S queries of the number of keys each attends."""
    total = context_len + q_len
    if not causal:
        return q_len * (smin(total, window) if window > 0 else total)
    if window <= 0:
        return q_len * context_len + q_len * (q_len + 1) / 2
    first = context_len + 1  # keys seen by the first new query
    uncapped = smin(q_len, smax(0, window - first))  # queries still under the window
    return uncapped * first + uncapped * (uncapped - 1) / 2 + (q_len - uncapped) * window


def chunk_prefix_keys(n: Any, chunk: int) -> Any:
    """Keys attended by the queries at positions 0 .. n-1 of chunked local attention: sum of (p mod c) + 1."""
    full, rest = n // chunk, n % chunk
    return full * chunk * (chunk + 1) / 2 + rest * (rest + 1) / 2


def attention_counts(*, batch: Any, q_heads: Any, kv_heads: Any, q_len: Any, context_len: Any,
                     head_dim: Any, v_head_dim: Any, causal: bool, window: int, precision: str,
                     q_bytes: Any, kv_itemsize: Any, out_bytes: Any, chunk: int = 0) -> Counts:
    cached = context_len + q_len
    if chunk > 0:  # chunked local attention (causal within the chunk)
        if window > 0:
            raise ValueError("attention with both a sliding window and a local-attention chunk is not modelled")
        pairs = batch * q_heads * (chunk_prefix_keys(cached, chunk) - chunk_prefix_keys(context_len, chunk))
        touched = context_len % chunk + q_len
        held = (cached - 1) % chunk + 1
    else:
        pairs = batch * q_heads * attended_keys(q_len, context_len, causal=causal, window=window)
        touched = smin(cached, window + q_len - 1) if window > 0 else cached
        held = smin(cached, window) if window > 0 else cached
    per_token_kv = batch * kv_heads * (head_dim + v_head_dim) * kv_itemsize
    append = q_len * per_token_kv  # new K/V: read from the projection, written into the cache
    return Counts(
        flops={precision: 2 * pairs * (head_dim + v_head_dim), "vector": SOFTMAX_FLOPS_PER_SCORE * pairs},
        bytes_read=q_bytes + touched * per_token_kv + append,
        bytes_written=out_bytes + append,
        state_bytes=held * per_token_kv,
        launches=2,
    )


@register(torch.ops.tensor_cast.attention.default, kind="attention")
def kv_cache_attention(call: OpCall) -> Counts:
    q, k, v = call.get("query"), call.get("key"), call.get("value")
    context_len, causal, window = call.get("context_len"), bool(call.get("causal")), int(call.get("window"))
    chunk = int(call.get("chunk") or 0)
    batch, q_heads, q_len, head_dim = q.shape
    counts = attention_counts(
        batch=batch, q_heads=q_heads, kv_heads=k.shape[1], q_len=q_len, context_len=context_len,
        head_dim=head_dim, v_head_dim=v.shape[-1], causal=causal, window=window,
        precision=gemm_precision(q, k), q_bytes=q.nbytes, kv_itemsize=k.itemsize, out_bytes=call.out_bytes,
        chunk=chunk,
    )
    keys = context_len % chunk + q_len if chunk > 0 else context_len + q_len  # a chunk: a local sequence
    kernel = AttentionShape(q_len=q_len, keys=keys, head_dim=head_dim, v_dim=v.shape[-1], window=window,
                            batch=batch, kv_heads=k.shape[1], kv_itemsize=k.itemsize, q_heads=q_heads)
    return dataclasses.replace(counts, kernel=kernel)


@register(torch._C._nn.scaled_dot_product_attention, torch.ops.aten.scaled_dot_product_attention.default,
          kind="attention")
def sdpa(call: OpCall) -> Counts:
    """Plain SDPA (no cache): keys are the ones passed in; `is_causal` halves the scores."""
    q, k, v = call.arg(0), call.arg(1), call.arg(2)
    causal = bool(call.arg(4, "is_causal", False))
    q_len, k_len = q.shape[-2], k.shape[-2]
    counts = attention_counts(
        batch=q.shape[0], q_heads=q.shape[1], kv_heads=k.shape[1], q_len=q_len, context_len=k_len - q_len,
        head_dim=q.shape[-1], v_head_dim=v.shape[-1], causal=causal, window=0,
        precision=gemm_precision(q, k), q_bytes=q.nbytes, kv_itemsize=k.itemsize, out_bytes=call.out_bytes,
    )
    # No cache here: K/V are read once as inputs, nothing is appended or held.
    return Counts(flops=counts.flops, bytes_read=q.nbytes + k.nbytes + v.nbytes,
                  bytes_written=call.out_bytes,
                  kernel=AttentionShape(q_len=q_len, keys=k_len, head_dim=q.shape[-1], v_dim=v.shape[-1],
                                        batch=q.shape[0], kv_heads=k.shape[1], kv_itemsize=k.itemsize,
                                        q_heads=q.shape[1]))
