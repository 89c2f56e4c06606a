"""DeepSeek-V4's attention as ops: compressed KV, its lightning indexer, the attention over both.

DeepSeek-V4 attends with one shared key/value head of `head_dim` (K = V) per layer, over two caches:
the last `window` tokens (sliding window) and, on compressed layers, one *compressed entry* per
`ratio` tokens — every entry on heavily compressed layers (HCA, ratio 128), the `topk` entries a
lightning indexer picks per query on compressed sparse layers (CSA, ratio 4); per-head learned
sinks join the softmax.

- `kv_compress(kv, gate, position_bias, norm_weight, eps, ratio, overlap, context_len)`: the
  compressor. Each closed window of `ratio` tokens becomes one entry: the softmax (over the window,
  per channel) of `gate + position_bias` weights the tokens' `kv`; the entry is RMS-normalized.
  `overlap` (CSA): each token projects two series of `width` channels, the entry of window w mixes
  window w-1's first series with window w's second (2·ratio slots). Returns the entries the step's
  own tokens close, (B, S // ratio, width).
- `compressed_indexer(q, k, weights, context_len, topk, ratio)`: per query, ReLU(q·k) over the
  compressed index keys, weighted-summed over the indexer heads (`weights` carries both scalings),
  the `topk` best entries among those the query may see (entry e covers tokens up to
  (e + 1)·ratio − 1: visible to position p when e < (p + 1) // ratio); -1 where fewer exist.
- `compressed_attention(q, kv, compressed, indices, sinks, context_len, window, ratio, scale,
  decode_query_len)`: q (B, H, S, D) against the window keys and the compressed entries, K = V;
  `compressed` None on sliding-only layers, `indices` None on HCA layers. Returns (B, S, H, D).

`context_len` tokens per sequence are already cached (a SymInt: no cache is materialized). The
reference implementations work on the step's own tokens from position 0, as transformers'
DeepSeek-V4 modules do without a cache — what `opcheck` and the numeric swap tests exercise.
"""

from __future__ import annotations

import math

import torch


@torch.library.custom_op("tensor_cast::kv_compress", mutates_args=())
def kv_compress(kv: torch.Tensor, gate: torch.Tensor, position_bias: torch.Tensor, norm_weight: torch.Tensor,
                eps: float, ratio: int, overlap: bool, context_len: int) -> torch.Tensor:
    """kv, gate (B, S, w·D) with w = 2 when `overlap` else 1; position_bias (ratio, w·D) -> (B, S // ratio, D)."""
    batch, seq, channels = kv.shape
    width = norm_weight.shape[0]
    windows = seq // ratio
    if windows == 0:
        return kv.new_zeros((batch, 0, width))
    chunk_kv = kv[:, :windows * ratio].float().reshape(batch, windows, ratio, channels)
    chunk_gate = gate[:, :windows * ratio].float().reshape(batch, windows, ratio, channels) + position_bias.float()
    if overlap:
        slots_kv = chunk_kv.new_zeros((batch, windows, 2 * ratio, width))
        slots_gate = chunk_gate.new_full((batch, windows, 2 * ratio, width), -math.inf)
        slots_kv[:, :, ratio:] = chunk_kv[..., width:]
        slots_gate[:, :, ratio:] = chunk_gate[..., width:]
        slots_kv[:, 1:, :ratio] = chunk_kv[:, :-1, :, :width]
        slots_gate[:, 1:, :ratio] = chunk_gate[:, :-1, :, :width]
        chunk_kv, chunk_gate = slots_kv, slots_gate
    pooled = (chunk_kv * chunk_gate.softmax(dim=2)).sum(dim=2)
    normed = pooled * torch.rsqrt(pooled.pow(2).mean(-1, keepdim=True) + eps) * norm_weight.float()
    return normed.to(kv.dtype)


@kv_compress.register_fake
def _kv_compress_fake(kv, gate, position_bias, norm_weight, eps, ratio, overlap, context_len):
    return kv.new_empty((kv.shape[0], kv.shape[1] // ratio, norm_weight.shape[0]))


def visible_entries(positions: torch.Tensor, entries: int, ratio: int) -> torch.Tensor:
    """(S, E) bool: entry e is complete for the query at `positions[s]` (e < (p + 1) // ratio)."""
    return torch.arange(entries).unsqueeze(0) < ((positions + 1) // ratio).unsqueeze(1)


@torch.library.custom_op("tensor_cast::compressed_indexer", mutates_args=())
def compressed_indexer(q: torch.Tensor, k: torch.Tensor, weights: torch.Tensor, context_len: int, topk: int,
                       ratio: int) -> torch.Tensor:
    """q (B, S, Hi, Di), k (B, E, Di), weights (B, S, Hi) -> indices (B, S, topk) int32."""
    batch, q_len, _, _ = q.shape
    entries = k.shape[1]
    out = torch.full((batch, q_len, topk), -1, dtype=torch.int32)
    keep = min(topk, entries)
    if keep == 0:
        return out
    scores = torch.relu(torch.einsum("bshd,bed->bshe", q.float(), k.float()))
    index_scores = torch.einsum("bsh,bshe->bse", weights.float(), scores)
    allowed = visible_entries(torch.arange(q_len), entries, ratio)
    index_scores = index_scores.masked_fill(~allowed, -math.inf)
    values, chosen = index_scores.topk(keep, dim=-1)
    out[..., :keep] = torch.where(torch.isinf(values), -1, chosen).to(torch.int32)
    return out


@compressed_indexer.register_fake
def _compressed_indexer_fake(q, k, weights, context_len, topk, ratio):
    return q.new_empty((q.shape[0], q.shape[1], topk), dtype=torch.int32)


@torch.library.custom_op("tensor_cast::compressed_attention", mutates_args=())
def compressed_attention(q: torch.Tensor, kv: torch.Tensor, compressed: torch.Tensor | None,
                         indices: torch.Tensor | None, sinks: torch.Tensor, context_len: int, window: int, ratio: int,
                         scale: float, decode_query_len: int) -> torch.Tensor:
    """q (B, H, S, D), kv (B, 1, S, D), compressed (B, 1, E, D) or None, indices (B, S, k) or None,
    sinks (H,) -> (B, S, H, D)."""
    batch, heads, q_len, _ = q.shape
    positions = torch.arange(q_len)
    keys = kv.float()
    near = (positions.unsqueeze(0) <= positions.unsqueeze(1)) & (positions.unsqueeze(1) - positions.unsqueeze(0) < window)
    allowed = near.expand(batch, q_len, q_len)
    if compressed is not None:
        entries = compressed.shape[2]
        if indices is None:
            far = visible_entries(positions, entries, ratio).expand(batch, q_len, entries)
        else:
            chosen = torch.zeros(batch, q_len, entries + 1, dtype=torch.bool)
            chosen.scatter_(-1, torch.where(indices < 0, entries, indices).long(), True)
            far = chosen[..., :entries]
        keys = torch.cat([keys, compressed.float()], dim=2)
        allowed = torch.cat([allowed, far], dim=-1)
    logits = torch.matmul(q.float(), keys.transpose(-1, -2)) * scale
    logits = logits.masked_fill(~allowed.unsqueeze(1), -math.inf)
    sink = sinks.float().reshape(1, heads, 1, 1).expand(batch, heads, q_len, 1)
    probs = torch.softmax(torch.cat([logits, sink], dim=-1), dim=-1)[..., :-1]
    out = torch.matmul(probs, keys).to(q.dtype)
    return out.transpose(1, 2).contiguous()


@compressed_attention.register_fake
def _compressed_attention_fake(q, kv, compressed, indices, sinks, context_len, window, ratio, scale, decode_query_len):
    batch, heads, q_len, dim = q.shape
    return q.new_empty((batch, q_len, heads, dim))
