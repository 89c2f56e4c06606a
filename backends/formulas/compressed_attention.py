"""Cost rules for DeepSeek-V4's attention: `tensor_cast::kv_compress`, `compressed_indexer`, `compressed_attention`.

Dimensions: H query heads of D (one shared K = V head of D), window W, compression ratio m (0: the
window only), indexer top-k k (0: HCA, every entry), indexer heads Hi of Di; B sequences of S new
tokens after C cached ones. A query at position p sees min(p + 1, W) window keys and the
floor((p + 1) / m) compressed entries closed by then (all of them on HCA, at most k on CSA); summed
over the step's queries exactly (`entry_pairs`, integer floor / mod terms, symbolic in C and S).

- `compressed_attention` (one kernel, as vLLM's and SGLang's DeepSeek-V4 backends run it: FlashMLA's
  sparse kernel over the window and the picked entries, K = V): 2·D (q·k) + 2·D (p·v) tensor FLOPs
  per (query, head, key) pair plus ~4 vector FLOPs per score; reads q, the window's keys the step
  touches, the compressed entries it needs (HCA: every closed entry once per sequence; CSA: the
  union of the picks, at most S·k) and the picks' indices; writes the output and appends the S new
  tokens' K = V to the window cache. Holds the window (min(W, C + S) tokens) and every closed entry
  (floor((C + S) / m)) at the cache's bytes per element.
- `kv_compress`: the new tokens' kv and gate projections (w = 2 overlapping series on CSA) read
  once; every window the step closes (floor((C + S) / m) − floor(C / m) per sequence) has its m rows
  read back, pooled (~`POOL_FLOPS` per element, the softmax over the window per channel) and its
  entry RMS-normalized and written to the compressed cache; the step's last rows (at most one
  window's) are written to the open-window state, which it holds (m tokens of kv and gate, w·D each).
- `compressed_indexer` (DeepGEMM's fp8 MQA logits + top-k, as DSA's indexer): 2·Hi·Di FLOPs per
  (query, visible index key) pair, the index keys (Di per entry) read once, float32 logits written
  and read back by the top-k; holds floor((C + S) / m) index keys.

No engine section has measured DeepSeek-V4 kernels: `compressed_attention` and `kv_compress` carry
no kernel shape and are timed as streaming attention kernels from these counts; the indexer
carries DSA's `IndexerShape` (the same DeepGEMM kernel scores it).
"""

from __future__ import annotations

from typing import Any

import torch

from ...sizes import smax, smin
from ..counts import Counts
from ..kernels import IndexerShape
from .attention import SOFTMAX_FLOPS_PER_SCORE, attended_keys
from .matmul import gemm_precision
from .registry import OpCall, register

POOL_FLOPS = 6  # per kv element: gate + bias, exp, sum, multiply-accumulate, normalize
NORM_FLOPS = 4  # RMS norm of an entry, per element
INDEX_SCORE_BYTES = 4  # float32 logits
INDEX_BYTES = 4  # int32 picks


def closed_entry_keys(n: Any, ratio: int) -> Any:
    """Sum over positions p = 0 .. n-1 of floor((p + 1) / ratio): the entries queries 0..n-1 see in all."""
    full, rest = n // ratio, n % ratio
    return ratio * full * (full - 1) / 2 + full * (rest + 1)


def capped_entry_keys(n: Any, ratio: int, cap: int) -> Any:
    """The same sum with each query's entries capped at `cap` (the indexer's top-k); cap 0: no cap."""
    if not cap:
        return closed_entry_keys(n, ratio)
    knee = cap * ratio  # from this many tokens on, a query sees at least `cap` closed entries
    return closed_entry_keys(smin(n, knee), ratio) + smax(0, n - knee) * cap


def entry_pairs(q_len: Any, context: Any, ratio: int, cap: int) -> Any:
    """(query, entry) pairs of one sequence's S new queries after C cached tokens."""
    if not ratio:
        return 0
    return capped_entry_keys(context + q_len, ratio, cap) - capped_entry_keys(context, ratio, cap)


@register(torch.ops.tensor_cast.compressed_attention.default, kind="attention")
def compressed_attention(call: OpCall) -> Counts:
    q, kv, compressed, indices = call.get("q"), call.get("kv"), call.get("compressed"), call.get("indices")
    context, window, ratio = call.get("context_len"), int(call.get("window")), int(call.get("ratio"))
    batch, heads, q_len, dim = q.shape
    topk = indices.shape[-1] if indices is not None else 0
    pairs = batch * heads * (attended_keys(q_len, context, causal=True, window=window)
                             + entry_pairs(q_len, context, ratio, topk))
    cached = context + q_len
    token_bytes = dim * kv.itemsize
    entry_bytes = dim * (compressed.itemsize if compressed is not None else kv.itemsize)
    entries = cached // ratio if ratio else 0
    read_entries = smin(entries, q_len * topk) if topk else entries
    append = batch * q_len * token_bytes
    return Counts(
        flops={gemm_precision(q, q): 2 * pairs * (dim + dim), "vector": SOFTMAX_FLOPS_PER_SCORE * pairs},
        bytes_read=(q.nbytes + batch * smin(cached, window + q_len - 1) * token_bytes + batch * read_entries * entry_bytes
                    + (indices.nbytes if indices is not None else 0) + call.get("sinks").nbytes + append),
        bytes_written=call.out_bytes + append,
        state_bytes=batch * (smin(cached, window) * token_bytes + entries * entry_bytes),
        launches=2,  # window-cache append, attention
    )


@register(torch.ops.tensor_cast.kv_compress.default, kind="attention")
def kv_compress(call: OpCall) -> Counts:
    kv, gate, norm_weight = call.get("kv"), call.get("gate"), call.get("norm_weight")
    context, ratio = call.get("context_len"), int(call.get("ratio"))
    batch, q_len, channels = kv.shape
    width = norm_weight.shape[0]
    new_entries = batch * ((context + q_len) // ratio - context // ratio)
    row_bytes = channels * (kv.itemsize + gate.itemsize)  # one token's kv and gate rows
    pooled = new_entries * ratio * row_bytes  # the rows of every window the step closes, read to pool them
    return Counts(
        flops={"vector": POOL_FLOPS * new_entries * ratio * channels + NORM_FLOPS * new_entries * width},
        bytes_read=kv.nbytes + gate.nbytes + call.get("position_bias").nbytes + norm_weight.nbytes + pooled,
        bytes_written=batch * smin(q_len, ratio) * row_bytes + new_entries * width * call.out.itemsize,
        state_bytes=batch * ratio * row_bytes,  # the open window's rows
        launches=1,
    )


@register(torch.ops.tensor_cast.compressed_indexer.default, kind="attention")
def compressed_indexer(call: OpCall) -> Counts:
    q, k, weights = call.get("q"), call.get("k"), call.get("weights")
    context, ratio = call.get("context_len"), int(call.get("ratio"))
    batch, q_len, heads, dim = q.shape
    pairs = batch * entry_pairs(q_len, context, ratio, 0)
    entries = batch * ((context + q_len) // ratio)
    cached = entries * dim * k.itemsize
    logits = pairs * INDEX_SCORE_BYTES
    return Counts(
        flops={gemm_precision(q, k): 2 * heads * dim * pairs, "vector": (3 * heads + 1) * pairs},
        bytes_read=q.nbytes + weights.nbytes + cached + logits,
        bytes_written=logits + call.out_bytes,
        state_bytes=cached,
        launches=2,  # logits, top-k
        kernel=IndexerShape(tokens=batch * q_len, key_bytes=cached, cached_tokens=entries),
    )
