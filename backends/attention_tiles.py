"""The tiles a FlashAttention-style prefill kernel runs: CTAs, (q-block, k-block) tiles, the longest CTA.

Owns the tile arithmetic of a tiled attention kernel over `AttentionShape` (FlashAttention-3 on
Hopper, FlashInfer / TRT-LLM FMHA on Blackwell), which `backends/efficiency.py` turns into time.
It reads no profile and produces no seconds.

A CTA owns one block of `block` query rows of one sequence and walks the key blocks (`block` keys
each) its rows attend: up to the causal diagonal, from the window's first key with a sliding window,
after the `keys - q_len` cached keys of a chunked prefill. Every tile costs a full block × block
product whatever share of it the mask keeps, so a 16-token prompt costs a whole tile, and a window
of W keys touches ceil((W - 1) / block) + 1 key blocks per q-block, not W / block.

With `pack_gqa` (FlashAttention-3's PackGQA, which vLLM's varlen prefill always takes) the g query
heads sharing a KV head are packed into the rows of one q-block: block / g positions per q-block,
one CTA column per (sequence, KV head). Without it, one per (sequence, query head).

Closed forms (symbolic-safe: sizes may be sympy expressions in B, S, C). With n q-blocks, g query
rows per position (1 unpacked) and cb = cached keys / block, q-block j (1-based) attends
ceil(j / g) + cb key blocks; summed over j = 1..n with q = floor(n / g), r = n - g·q:
g·q(q+1)/2 + r(q+1) + n·cb. A window caps each q-block at cap = ceil((W - 1) / block) + 1 blocks:
the first u = min(n, g·(cap - 1 - cb)) q-blocks are below the cap.

A decode (one query per sequence) runs split-KV: each work item (sequence, KV head; PackGQA puts a
KV head's query heads in one item) has its n key blocks cut into `splits` CTAs of ceil(n / splits)
blocks each. The split count is FlashAttention-3's dynamic one (vLLM's FA3 fork,
`hopper/flash_prepare_scheduler.cu`): blocks_per_sm = ceil(1.1 · items · n / SMs), splits =
clamp(ceil(n / blocks_per_sm), 1, max_splits) (max_splits: vLLM's cap in CUDA graphs, 32), so items
that fill the SMs get one CTA each and one long sequence gets about SMs / items of them. A window of
W keys covers ceil((W - 1) / block) + 1 key blocks once the cache is longer than it (its first key
falls inside a block), as in prefill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy

from ..sizes import as_expr, cdiv, smax, smin
from .kernels import AttentionShape


@dataclass(frozen=True)
class PrefillTiles:
    ctas: Any  # CTAs: (sequence, head column, q-block)
    tiles: Any  # block x block tiles over all CTAs
    longest: Any  # key blocks of the longest CTA
    tile_flops: Any  # tensor FLOPs of one full tile (QK^T and PV)


@dataclass(frozen=True)
class DecodeTiles:
    items: Any  # (sequence, KV head, q-block) work items
    blocks: Any  # key blocks of one item
    splits: Any  # split-KV CTAs per item
    per_cta: Any  # key blocks one CTA walks: ceil(blocks / splits)


def decode_tiles(shape: AttentionShape, block_q: int, block_n: int, sms: int, max_splits: int) -> DecodeTiles:
    items = shape.batch * shape.kv_heads * cdiv(shape.q_len, block_q)
    blocks = cdiv(shape.keys, block_n)
    if shape.window > 0:  # a window's first key falls anywhere in a block: one block more than it covers
        blocks = smin(blocks, cdiv(shape.window + shape.q_len - 2, block_n) + 1)
    per_sm = cdiv(11 * items * blocks, 10 * sms)  # ceil(1.1 x total blocks / SMs), FA3's 10% margin
    splits = smin(max_splits, smax(1, cdiv(blocks, per_sm)))
    return DecodeTiles(items=items, blocks=blocks, splits=splits, per_cta=cdiv(blocks, splits))


def _floor_div(a: Any, b: int) -> Any:
    if isinstance(a, int):
        return a // b
    return sympy.floor(as_expr(a) / b)


def _causal_blocks(n: Any, g: int) -> Any:
    """sum_{j=1..n} ceil(j / g): key blocks of n packed q-blocks up to the diagonal."""
    q = _floor_div(n, g)
    return g * q * (q + 1) / 2 + (n - g * q) * (q + 1)


def prefill_tiles(shape: AttentionShape, block: int, pack_gqa: bool) -> PrefillTiles:
    heads, kv_heads = shape.q_heads, shape.kv_heads
    if pack_gqa and not (isinstance(heads, int) and isinstance(kv_heads, int) and heads % kv_heads == 0):
        raise ValueError(f"PackGQA needs integer query heads divisible by KV heads, got {heads} / {kv_heads}")
    g = heads // kv_heads if pack_gqa else 1
    columns = shape.batch * (kv_heads if pack_gqa else heads)
    n = cdiv(shape.q_len * g, block)  # q-blocks per column
    cached = (shape.keys - shape.q_len) / block  # key blocks before the chunk (chunked prefill)
    full_longest = cdiv(n, g) + cached
    if shape.window > 0:
        cap = cdiv(shape.window - 1, block) + 1
        below = smin(n, smax(0, g * (cap - 1 - cached)))
        per_column = _causal_blocks(below, g) + below * cached + (n - below) * cap
        longest = smin(full_longest, cap)
    else:
        per_column = _causal_blocks(n, g) + n * cached
        longest = full_longest
    return PrefillTiles(ctas=columns * n, tiles=columns * per_column, longest=longest,
                        tile_flops=2 * (shape.head_dim + shape.v_dim) * block * block)
