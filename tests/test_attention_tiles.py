"""The tile counts of the tiled prefill model (backends/attention_tiles.py) against a brute-force
enumeration of the kernel's q-blocks and key blocks (the time they yield: tests/test_efficiency.py)."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from tensor_cast.backends.attention_tiles import (
    fa3_one_wg,
    fa3_prefill_tile,
    prefill_tiles,
    window_span_blocks,
)
from tensor_cast.backends.kernels import AttentionShape

BLOCK = 128


def enumerate_tiles(q_len: int, cached: int, g: int, window: int) -> tuple[int, int, int]:
    """(q-blocks, tiles, longest) of one (sequence, head column), by walking the kernel's loops:
    q-block j holds packed rows j*BLOCK .. (j+1)*BLOCK-1, row r is query position r // g."""
    blocks = math.ceil(q_len * g / BLOCK)
    tiles = longest = 0
    for j in range(blocks):
        first = (j * BLOCK) // g
        last = min(q_len, math.ceil((j + 1) * BLOCK / g))  # positions [first, last)
        low = max(0, cached + first - window + 1) if window else 0  # the first row's first key
        count = math.ceil((cached + last) / BLOCK) - low // BLOCK
        tiles += count
        longest = max(longest, count)
    return blocks, tiles, longest


def shape(q_len, cached=0, hq=32, hkv=8, window=0, batch=1, d=128):
    return AttentionShape(q_len=q_len, keys=cached + q_len, head_dim=d, v_dim=d, window=window, batch=batch,
                          kv_heads=hkv, q_heads=hq)


@pytest.mark.parametrize("q_len", [1, 16, 100, 128, 129, 1000, 4096])
@pytest.mark.parametrize("cached", [0, 256])
@pytest.mark.parametrize("hq, hkv, pack", [(32, 8, True), (32, 8, False), (8, 8, True), (64, 1, True)])
def test_full_causal_tiles_match_the_kernel_loops(q_len, cached, hq, hkv, pack):
    g = hq // hkv if pack else 1
    blocks, per_column, longest = enumerate_tiles(q_len, cached, g, 0)
    columns = 2 * (hkv if pack else hq)
    tiles = prefill_tiles(shape(q_len, cached, hq, hkv, batch=2), BLOCK, pack)
    assert tiles.ctas == columns * blocks
    assert float(tiles.tiles) == columns * per_column
    assert float(tiles.longest) == longest
    assert tiles.tile_flops == 2 * 256 * BLOCK * BLOCK


@pytest.mark.parametrize("q_len", [16, 128, 1000, 4096])
@pytest.mark.parametrize("window", [128, 1024])
def test_unpacked_window_tiles_match_the_kernel_loops(q_len, window):
    blocks, per_column, longest = enumerate_tiles(q_len, 0, 1, window)
    tiles = prefill_tiles(shape(q_len, hq=8, hkv=8, window=window), BLOCK, False)
    assert (tiles.ctas, float(tiles.tiles), float(tiles.longest)) == (8 * blocks, 8 * per_column, longest)


@pytest.mark.parametrize("q_len, window, g", [(4096, 128, 4), (4096, 1024, 8), (16384, 8192, 8), (2048, 128, 64)])
def test_packed_window_tiles_follow_the_kernel_loops_on_average(q_len, window, g):
    """Packed q-blocks start at any key offset: the closed form counts the mean key blocks a window
    touches, within 3% of the walk."""
    _, per_column, _ = enumerate_tiles(q_len, 0, g, window)
    tiles = prefill_tiles(shape(q_len, hq=g, hkv=1, window=window), BLOCK, True)
    assert float(tiles.tiles) == pytest.approx(per_column, rel=0.03)


def test_pack_gqa_needs_whole_groups():
    with pytest.raises(ValueError, match="PackGQA"):
        prefill_tiles(shape(128, hq=12, hkv=8), BLOCK, True)


# ---- FlashAttention-3's local kernel: a q-block's keys start at its window's first key ---------------
def enumerate_fa3_window(q_len: int, g: int, window: int, block_m: int, block_n: int) -> tuple[int, int]:
    """(tiles, longest) of one column by FA3's get_n_block_min_max for a local kernel without cached keys:
    n_offset = max(0, first position - (W - 1)), key blocks ceil((last position + 1 - n_offset) / block_n)."""
    tiles = longest = 0
    for j in range(math.ceil(q_len * g / block_m)):
        first = (j * block_m) // g
        last = min(q_len, ((j + 1) * block_m - 1) // g + 1)  # positions [first, last)
        count = math.ceil((last - max(0, first - window + 1)) / block_n)
        tiles += count
        longest = max(longest, count)
    return tiles, longest


@pytest.mark.parametrize("block_m, block_n, g, window, expected", [
    (192, 160, 1, 128, (Fraction(2), 2)),   # 192 positions + 127 keys = 319: two 160-key blocks, not three
    (128, 160, 8, 128, (Fraction(1), 1)),   # 16 positions + 127 = 143 keys: one block
    (128, 64, 3, 86, (Fraction(7, 3), 3)),  # 43, 44, 43 positions + 85: 128, 129, 128 keys -> 2, 3, 2 blocks
])
def test_window_span_blocks_by_hand(block_m, block_n, g, window, expected):
    assert window_span_blocks(block_m, block_n, g, window) == expected


@pytest.mark.parametrize("q_len", [100, 1000, 4096])
@pytest.mark.parametrize("window", [128, 1024])
def test_fa3_window_tiles_match_its_block_loop_on_the_key_grid(q_len, window):
    """128 x 128 tiles, one head per q-block: every q-block is whole periods, so the count is exact."""
    tiles, longest = enumerate_fa3_window(q_len, 1, window, 128, 128)
    got = prefill_tiles(shape(q_len, hq=8, hkv=8, window=window), 128, False, 128, window_from_key=True)
    assert (float(got.tiles), float(got.longest)) == (8 * tiles, longest)


@pytest.mark.parametrize("q_len, g, window, block_m, block_n", [
    (4096, 1, 128, 192, 160), (16384, 1, 128, 192, 160), (4096, 8, 128, 128, 160), (4096, 5, 128, 128, 128),
    (16384, 8, 8192, 128, 160), (2048, 4, 1024, 128, 96)])
def test_fa3_window_tiles_follow_its_block_loop(q_len, g, window, block_m, block_n):
    """FA3's tiles (192 x 160 at d = 64, 128 x 160 fp8, ...) with PackGQA: exact in the window's steady state,
    the diagonal's mean before it; within 1% of the loop."""
    tiles, longest = enumerate_fa3_window(q_len, g, window, block_m, block_n)
    got = prefill_tiles(shape(q_len, hq=g, hkv=1, window=window), block_m, True, block_n, window_from_key=True)
    assert float(got.tiles) == pytest.approx(tiles, rel=0.01)
    assert float(got.longest) == longest


def test_append_rounds_by_hand_and_bad_limits():
    from tensor_cast.backends.attention_append import append_rounds

    # 4 KV heads x 128 = 512 threads, 4 resident on each of 132 SMs: 528 tokens a round
    assert append_rounds(shape(264, hq=32, hkv=4, batch=4), 132, 512, 2048, 32) == 2
    assert append_rounds(shape(264, hq=32, hkv=1, d=64, batch=4), 132, 512, 2048, 32) == 0.25  # 64 threads: 32
    with pytest.raises(ValueError, match="append limits must be positive"):
        append_rounds(shape(16), 132, 0, 2048, 32)
    with pytest.raises(ValueError, match="does not fit an SM"):
        append_rounds(shape(16, hq=32, hkv=8), 132, 4096, 512, 32)


@pytest.mark.parametrize("q_len, hq, hkv, d, dv, expected", [
    (64, 8, 8, 128, 128, 1),   # 64 rows: FA3's one-MMA-warpgroup kernel
    (65, 8, 8, 128, 128, 0),   # 65 rows: two warpgroups
    (16, 32, 8, 64, 64, 1),    # 16 positions x 4 packed heads = 64 rows
    (17, 32, 8, 64, 64, 0),    # 68 rows
    (16, 8, 8, 192, 192, 0),   # no one-warpgroup tile at d = 192
    (16, 8, 8, 96, 96, 0),     # nor at 96
    (16, 8, 8, 128, 64, 0),    # V's head dim differs
])
def test_fa3_one_mma_warpgroup_gate_by_hand(q_len, hq, hkv, d, dv, expected):
    s = AttentionShape(q_len=q_len, keys=q_len, head_dim=d, v_dim=dv, batch=2, kv_heads=hkv, q_heads=hq)
    assert fa3_one_wg(s, pack_gqa=True) == expected


def test_fa3_one_mma_warpgroup_tiles():
    assert fa3_prefill_tile(64, 2, False, one_wg=True) == (64, 192, True)
    assert fa3_prefill_tile(128, 2, False, one_wg=True) == (64, 128, True)
    assert fa3_prefill_tile(128, 1, False, one_wg=True) == (64, 160, True)  # the fp8 k-block kept
    assert fa3_prefill_tile(128, 2, True, one_wg=True) == (128, 128, True)  # a local kernel keeps its tile
    assert fa3_prefill_tile(192, 2, False, one_wg=True) == (128, 96, True)
