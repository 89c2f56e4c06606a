"""The tile counts of the tiled prefill model (backends/attention_tiles.py) against a brute-force
enumeration of the kernel's q-blocks and key blocks (the time they yield: tests/test_efficiency.py)."""

from __future__ import annotations

import math

import pytest

from tensor_cast.backends.attention_tiles import prefill_tiles
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
