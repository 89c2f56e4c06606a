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
the first u = min(n, g·(cap - 1 - cb)) q-blocks are below the cap. FlashAttention-3's local kernel
instead starts each q-block's keys at its window's first key (hopper/block.h, get_n_block_min_max:
n_offset = first position - (W - 1), the K pointers moved there), so once the window is full a
q-block takes ceil((its positions + W - 1) / block_n) blocks whatever its offset on the key grid
(`window_span_blocks`; `prefill_tiles(..., window_from_key=True)`): at d = 64 (192 x 160 tiles) a
128-key window costs two blocks per q-block, not the three a grid-aligned count averages.
A causal prompt of at most 64 packed query rows at head dim 64 or 128 runs FA3's one-MMA-warpgroup kernel
on a 64-row q-block (`fa3_one_wg`, `FA3_ONE_WG_TILES`; `fa3_prefill_tile(..., one_wg=True)`).

A decode (one query per sequence) runs split-KV: each work item (sequence, KV head; PackGQA puts a
KV head's query heads in one item) has its n key blocks cut into `splits` CTAs of ceil(n / splits)
blocks each. The split count is FlashAttention-3's dynamic one (vLLM's FA3 fork,
`hopper/flash_prepare_scheduler.cu`): blocks_per_sm = ceil(1.1 · items · n / SMs), splits =
clamp(ceil(n / blocks_per_sm), 1, max_splits) (max_splits: vLLM's cap in CUDA graphs, 32), so items
that fill the SMs get one CTA each and one long sequence gets about SMs / items of them. A window of
W keys covers ceil((W - 1) / block) + 1 key blocks once the cache is longer than it (its first key
falls inside a block), as in prefill.

FlashAttention-3's own decode tiles (`fa3_decode_block`, `split_gate`; `decode_tiles(..., fa3=True)`):
the k-block is FA3's for the head dim, the cache dtype and whether a window is set (vLLM's FA3
fork, `hopper/tile_size.h`, `tile_size_fwd_sm90` with paged_kv_non_TMA: vLLM's 16-token pages are
never a whole k-block), so a d = 256 bf16 decode walks 80-key blocks (64 with a window) and an fp8
d = 128 one 160-key blocks; a window's blocks are those FA3 visits, from floor((keys - W) / N) to
ceil(keys / N) (`n_block_min` / `n_block_max` for one query), so a 128-key window over 256 cached
keys of 128-key blocks is one block, not two; and above 992 sequences (`PREPARE_VARLEN_MAX_BATCHES_1CTA`,
`hopper/flash_api.cpp`) FA3 does not split at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd
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
    block_n: int = 128  # keys per block


# FlashAttention-3's k-block (kBlockN) on Hopper by the head dim it is compiled for (the smallest of 64,
# 96, 128, 192, 256 at least d) and the KV element size, as vLLM runs it: paged_kv_non_TMA (16-token
# pages), one query per sequence (a decode is not causal, except d = 128 bf16, whose causal tile is the
# same 128). (element bytes, head-dim bound) -> (k-block without a window, k-block with one);
# vLLM's FA3 fork, hopper/tile_size.h, tile_size_fwd_sm90.
FA3_DECODE_BLOCK_N: dict[tuple[int, int], tuple[int, int]] = {
    (2, 64): (160, 160), (2, 96): (128, 128), (2, 128): (128, 128), (2, 192): (96, 96), (2, 256): (80, 64),
    (1, 64): (160, 160), (1, 96): (128, 128), (1, 128): (160, 160), (1, 192): (160, 128), (1, 256): (128, 64),
}
# FlashAttention-3's prefill tile on Hopper as vLLM runs it (causal, or local with a window; paged_kv_non_TMA):
# (element bytes, head-dim bound) -> (kBlockM, kBlockN causal, kBlockN local, IntraWGOverlap causal,
# IntraWGOverlap local). Without IntraWGOverlap the softmax of one tile does not overlap the next tile's
# MMAs (bf16 d <= 64 with a window; fp8 d = 256 on paged KV). vLLM's FA3 fork, hopper/tile_size.h.
FA3_PREFILL_TILES: dict[tuple[int, int], tuple[int, int, int, bool, bool]] = {
    (2, 64): (192, 128, 160, True, False), (2, 96): (192, 128, 128, True, True),
    (2, 128): (128, 128, 128, True, True), (2, 192): (128, 96, 96, True, True), (2, 256): (128, 80, 64, True, True),
    (1, 64): (192, 160, 160, True, True), (1, 96): (192, 128, 128, True, True),
    (1, 128): (128, 160, 160, True, True), (1, 192): (128, 160, 128, True, True),
    (1, 256): (128, 128, 64, False, False),
}
# FlashAttention-3's one-MMA-warpgroup kernel (use_one_mma_wg: one consumer warpgroup, a 64-row q-block) for a
# prompt of at most 64 packed query rows at head dim 64 or 128 (V's the same): head-dim bound -> (kBlockM,
# kBlockN; 0: the two-warpgroup tile's). vLLM's FA3 fork, hopper/tile_size.h (64 x 192 at d <= 64; 64 x 128 at
# d = 128, causal and paged) and run_mha_fwd_ (kHeadDim 64 / 128, kHeadDimV == kHeadDim). The fork's fp8 tiles
# read here have no one-warpgroup branch; the tables' fp8 short prompts follow it all the same (fp8 prefill
# windows 10.2 -> 9.5% held out), so it is taken for both cache dtypes: kBlockN 192 at d = 64, at d = 128 the
# two-warpgroup tile's (128 bf16, 160 fp8).
FA3_ONE_WG_ROWS = 64
FA3_ONE_WG_TILES: dict[int, tuple[int, int]] = {64: (64, 192), 128: (64, 0)}
FA3_MAX_SPLIT_BATCH = 992  # hopper/flash_api.cpp: PREPARE_VARLEN_MAX_BATCHES_1CTA; above it num_splits = 1


def fa3_decode_block(head_dim: int, kv_itemsize: int, window: bool) -> int:
    """FlashAttention-3's k-block for a decode (`FA3_DECODE_BLOCK_N`)."""
    return FA3_DECODE_BLOCK_N[_fa3_bound(FA3_DECODE_BLOCK_N, head_dim, kv_itemsize)][1 if window else 0]


def _fa3_bound(table: Any, head_dim: int, kv_itemsize: int) -> tuple[int, int]:
    bounds = sorted(b for size, b in table if size == kv_itemsize)
    if not bounds:
        raise ValueError(f"FlashAttention-3 has no kernel for {kv_itemsize}-byte K/V elements; accepted: 1, 2")
    bound = next((b for b in bounds if head_dim <= b), None)
    if bound is None:
        raise ValueError(f"FlashAttention-3 takes head dims up to {bounds[-1]}, got {head_dim}")
    return kv_itemsize, bound


def fa3_prefill_tile(head_dim: int, kv_itemsize: int, window: bool, one_wg: bool = False) -> tuple[int, int, bool]:
    """FlashAttention-3's prefill (kBlockM, kBlockN, IntraWGOverlap) (`FA3_PREFILL_TILES`); `one_wg`: its
    one-MMA-warpgroup tile for a short causal prompt (`FA3_ONE_WG_TILES`, `fa3_one_wg`)."""
    bound = _fa3_bound(FA3_PREFILL_TILES, head_dim, kv_itemsize)
    block_m, causal_n, local_n, causal_overlap, local_overlap = FA3_PREFILL_TILES[bound]
    if one_wg and not window and bound[1] in FA3_ONE_WG_TILES:
        block_m, block_n = FA3_ONE_WG_TILES[bound[1]]
        return block_m, block_n or causal_n, True
    return (block_m, local_n, local_overlap) if window else (block_m, causal_n, causal_overlap)


def fa3_one_wg(shape: AttentionShape, pack_gqa: bool) -> Any:
    """1 where FA3 runs its one-MMA-warpgroup kernel for the shape, else 0 (symbolic-safe in the prompt
    length): a head dim it has the tile for (64 or 128, V's the same) and at most `FA3_ONE_WG_ROWS` query
    rows a q-block would hold (the prompt's positions x the query heads PackGQA puts in one)."""
    d = max(shape.head_dim, shape.v_dim)
    if shape.head_dim != shape.v_dim or not fa3_runs(shape):
        return 0
    if _fa3_bound(FA3_PREFILL_TILES, d, shape.kv_itemsize)[1] not in FA3_ONE_WG_TILES:
        return 0
    g = shape.q_heads // shape.kv_heads if pack_gqa else 1
    return smin(1, smax(0, FA3_ONE_WG_ROWS + 1 - shape.q_len * g))


def fa3_runs(shape: AttentionShape) -> bool:
    """Whether FlashAttention-3 has a kernel for the shape (16- or 8-bit K/V, head dims up to 256);
    other shapes keep the generic 128-key blocks (an engine runs another backend for them)."""
    return shape.kv_itemsize in (1, 2) and max(shape.head_dim, shape.v_dim) <= max(b for _, b in FA3_PREFILL_TILES)


def split_gate(batch: Any, limit: int) -> Any:
    """1 while `batch` <= limit (FA3 may split), 0 above it (symbolic-safe)."""
    return 1 - smin(1, smax(0, batch - limit))


def decode_tiles(shape: AttentionShape, block_q: int, block_n: int, sms: int, max_splits: int,
                 fa3: bool = False) -> DecodeTiles:
    """The split-KV CTAs of a decode. `fa3`: FlashAttention-3's own k-block for the shape (`block_n`
    ignored), the window's blocks as FA3 visits them and no split above `FA3_MAX_SPLIT_BATCH` sequences,
    where FA3 has a kernel for the shape (`fa3_runs`)."""
    items = shape.batch * shape.kv_heads * cdiv(shape.q_len, block_q)
    fa3 = fa3 and fa3_runs(shape)
    if fa3:
        block_n = fa3_decode_block(max(shape.head_dim, shape.v_dim), shape.kv_itemsize, shape.window > 0)
    blocks = cdiv(shape.keys, block_n)
    if shape.window > 0 and fa3:  # n_block_min = floor((keys - W) / N) .. n_block_max = ceil(keys / N)
        blocks = smin(blocks, blocks - _floor_div(shape.keys - shape.window, block_n))
    elif shape.window > 0:  # a window's first key falls anywhere in a block: one block more than it covers
        blocks = smin(blocks, cdiv(shape.window + shape.q_len - 2, block_n) + 1)
    per_sm = cdiv(11 * items * blocks, 10 * sms)  # ceil(1.1 x total blocks / SMs), FA3's 10% margin
    splits = smin(max_splits, smax(1, cdiv(blocks, per_sm)))
    if fa3:
        gate = split_gate(shape.batch, FA3_MAX_SPLIT_BATCH)
        splits = splits * gate + (1 - gate)
    return DecodeTiles(items=items, blocks=blocks, splits=splits, per_cta=cdiv(blocks, splits), block_n=block_n)


def _floor_div(a: Any, b: int) -> Any:
    if isinstance(a, (int, float)):
        return a // b
    return sympy.floor(as_expr(a) / b)


def _causal_blocks(n: Any, p: int, q: int = 1) -> Any:
    """sum_{j=1..n} ceil(j p / q) (p / q in lowest terms: the k-blocks one q-block advances the diagonal
    by): the key blocks of n q-blocks up to the diagonal. Exact for p = 1; otherwise exact at whole
    periods of q q-blocks and the period's mean rounding in between."""
    if p == 1:
        whole = _floor_div(n, q)
        return q * whole * (whole + 1) / 2 + (n - q * whole) * (whole + 1)
    return p * n * (n + 1) / (2 * q) + (q - 1) * n / (2 * q)


def window_span_blocks(block: int, block_n: int, g: int, window: int) -> tuple[Fraction, int]:
    """(mean, most) key blocks of a q-block once its window is full, in FlashAttention-3's local kernel,
    which starts each q-block's keys at its window's first key (hopper/block.h, get_n_block_min_max:
    n_offset = m_idx_min - window_size_left, K pointers moved there): ceil((rows / g + W - 1) / block_n)
    for the positions its packed rows cover (they vary with j mod g / gcd(block, g); one period)."""
    period = g // gcd(block, g)
    counts = []
    for j in range(period):
        first, last = (j * block) // g, ((j + 1) * block - 1) // g + 1  # positions [first, last)
        counts.append(-(-(last - first + window - 1) // block_n))
    return Fraction(sum(counts), period), max(counts)


def prefill_tiles(shape: AttentionShape, block: int, pack_gqa: bool, block_n: int | None = None,
                  window_from_key: bool = False) -> PrefillTiles:
    """Tiles of `block` (q-block rows) x `block_n` (keys; default `block`) over the shape. `window_from_key`:
    a window's key blocks start at its first key (FlashAttention-3's local kernel, `window_span_blocks`),
    not on the key-block grid."""
    heads, kv_heads = shape.q_heads, shape.kv_heads
    if pack_gqa and not (isinstance(heads, int) and isinstance(kv_heads, int) and heads % kv_heads == 0):
        raise ValueError(f"PackGQA needs integer query heads divisible by KV heads, got {heads} / {kv_heads}")
    block_n = block if block_n is None else block_n
    g = heads // kv_heads if pack_gqa else 1
    step = Fraction(block, g * block_n)  # k-blocks the diagonal advances per q-block
    p, q = step.numerator, step.denominator
    columns = shape.batch * (kv_heads if pack_gqa else heads)
    n = cdiv(shape.q_len * g, block)  # q-blocks per column
    cached = (shape.keys - shape.q_len) / block_n  # key blocks before the chunk (chunked prefill)
    full_longest = cdiv(n * p, q) + cached
    if shape.window > 0 and window_from_key:
        mean, most = window_span_blocks(block, block_n, g, shape.window)
        cap: Any = sympy.Rational(mean.numerator, mean.denominator) if mean.denominator != 1 else int(mean)
        # q-blocks whose first position is short of a full window: they start at key 0 (causal blocks)
        below = smin(n, smax(0, cdiv((shape.window - 1 - (shape.keys - shape.q_len)) * g, block)))
        per_column = _causal_blocks(below, p, q) + below * cached + (n - below) * cap
        longest = smin(full_longest, most)
    elif shape.window > 0:
        if p == 1:  # q-blocks start on k-block bounds: a window touches whole-block spans
            cap = cdiv(shape.window - 1, block_n) + 1
        else:  # q-blocks start anywhere in a k-block: the mean k-blocks a span of block / g + W - 1 keys touches
            cap = (block / g + shape.window - 2) / block_n + 1
        below = smin(n, smax(0, (cap - 1 - cached) * q / p if p != 1 else q * (cap - 1 - cached)))
        if p != 1:
            below = _floor_div(below, 1)
        per_column = _causal_blocks(below, p, q) + below * cached + (n - below) * cap
        longest = smin(full_longest, cap)
    else:
        per_column = _causal_blocks(n, p, q) + n * cached
        longest = full_longest
    return PrefillTiles(ctas=columns * n, tiles=columns * per_column, longest=longest,
                        tile_flops=2 * (shape.head_dim + shape.v_dim) * block * block_n)
