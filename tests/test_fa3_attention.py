"""FlashAttention-3's own kernel facts in the attention model (backends/attention_tiles.py,
backends/efficiency.py), each checked with a number derived by hand on a tiny shape: the tile
table (vLLM's FA3 `hopper/tile_size.h`), the window's key blocks, the split-KV combine up to 992
sequences (`hopper/flash_api.cpp`), the sliding-window kernel's per-CTA cost, the cache append's
thread block per token and the softmax of kernels without intra-warpgroup overlap."""

from __future__ import annotations

import math

import pytest
import torch
from profile_text import profile_head, profile_sources

import tensor_cast
import tensor_cast.ops
from tensor_cast.backends.attention_tiles import (
    FA3_MAX_SPLIT_BATCH,
    decode_tiles,
    fa3_decode_block,
    fa3_prefill_tile,
    prefill_tiles,
)
from tensor_cast.backends.device import parse_profile
from tensor_cast.backends.kernels import AttentionShape

SMS = 100  # profile_head's compute units
PEAK_BF16 = 400e12  # profile_head's bf16 tensor peak


def vllm(**efficiency: float):
    """profile_head's device (100 SMs, 2,000 GB/s, bf16 400 TFLOP/s, no launch costs) with a vllm section."""
    body = "\n".join(f"{k} = {v!r}" for k, v in efficiency.items())
    text = (profile_head("fa3-gpu", "FA3 test GPU") + "\n[efficiency.vllm]\n" + body + "\n"
            + profile_sources() + '"efficiency" = "a test"\n')
    return parse_profile(text, "p.toml", "vllm")


def attention(profile, batch, hq, hkv, d, q_len, context, window=0, kv=torch.bfloat16):
    q = torch.empty(batch, hq, q_len, d, dtype=torch.bfloat16, device="meta")
    k = torch.empty(batch, hkv, q_len, d, dtype=kv, device="meta")
    return tensor_cast.op_cost(torch.ops.tensor_cast.attention.default, q, k, k, context, d**-0.5, True, window,
                               None, device=profile)


def shape(keys, window=0, d=128, itemsize=2, batch=1, kv_heads=1, q_heads=8, q_len=1):
    return AttentionShape(q_len=q_len, keys=keys, head_dim=d, v_dim=d, window=window, batch=batch,
                          kv_heads=kv_heads, q_heads=q_heads, kv_itemsize=itemsize)


# ---- the tile table -------------------------------------------------------------------------------
@pytest.mark.parametrize("d, itemsize, window, block_n", [
    (64, 2, False, 160),  # not causal, paged KV without TMA
    (128, 2, False, 128), (128, 2, True, 128),
    (256, 2, False, 80), (256, 2, True, 64),
    (128, 1, False, 160), (192, 1, True, 128), (256, 1, True, 64),
    (80, 2, False, 128),  # compiled for d <= 96
])
def test_decode_k_block_is_fa3s_for_the_head_dim_dtype_and_window(d, itemsize, window, block_n):
    assert fa3_decode_block(d, itemsize, window) == block_n


@pytest.mark.parametrize("d, itemsize, window, tile", [
    (64, 2, False, (192, 128, True)), (64, 2, True, (192, 160, False)),  # no intra-WG overlap with a window
    (128, 2, False, (128, 128, True)), (192, 2, False, (128, 96, True)), (256, 2, True, (128, 64, True)),
    (128, 1, False, (128, 160, True)), (256, 1, False, (128, 128, False)),  # fp8 d 256 on paged KV: no overlap
])
def test_prefill_tile_is_fa3s_for_the_head_dim_dtype_and_window(d, itemsize, window, tile):
    assert fa3_prefill_tile(d, itemsize, window) == tile


@pytest.mark.parametrize("d, itemsize, match", [(512, 2, "up to 256"), (128, 4, "4-byte")])
def test_fa3_refuses_head_dims_and_dtypes_it_has_no_kernel_for(d, itemsize, match):
    with pytest.raises(ValueError, match=match):
        fa3_decode_block(d, itemsize, False)


# ---- decode ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("keys, window, d, itemsize, blocks", [
    (256, 128, 128, 2, 1),  # keys 128..255 are exactly block 1: floor(128 / 128) = 1 .. ceil(256 / 128) = 2
    (4096, 128, 128, 2, 1),
    (300, 128, 128, 2, 2),  # keys 172..299: blocks 1 and 2
    (256, 128, 128, 1, 2),  # fp8, 160-key blocks: floor(128 / 160) = 0 .. ceil(256 / 160) = 2
    (1024, 128, 128, 1, 2),  # floor(896 / 160) = 5 .. ceil(1024 / 160) = 7
    (100, 128, 128, 2, 1),  # shorter than the window: the whole cache
    (4096, 0, 256, 2, 52),  # no window, d 256: ceil(4096 / 80)
])
def test_fa3_decode_walks_the_blocks_its_window_touches(keys, window, d, itemsize, blocks):
    tiles = decode_tiles(shape(keys, window, d, itemsize), 128, 128, SMS, 32, fa3=True)
    assert tiles.blocks == blocks


def test_fa3_does_not_split_above_992_sequences():
    """One KV head, 64 blocks: 992 sequences on 10,000 SMs get blocks_per_sm = ceil(1.1 x 992 x 64 /
    10,000) = 7, ceil(64 / 7) = 10 splits; 993 sequences get none (PREPARE_VARLEN_MAX_BATCHES_1CTA)."""
    assert FA3_MAX_SPLIT_BATCH == 992
    for batch, splits in ((992, 10), (993, 1)):
        assert decode_tiles(shape(8192, batch=batch), 128, 128, 10_000, 32, fa3=True).splits == splits
        assert decode_tiles(shape(8192, batch=batch), 128, 128, 10_000, 32).splits == 10  # without fa3: no cap


def test_the_window_kernel_adds_its_per_cta_cost_once_the_cache_is_longer_than_the_window():
    """One sequence, one KV head, d 128, window 128, sm_gbps 10, window_cta_us 5: one CTA of one
    64 KiB block (65,536 B / 10 GB/s = 6.5536 us), plus 5 us while the cache (100 or 4,096 keys) is
    longer than the window."""
    profile = vllm(attention_fa3_tiles=1, attention_sm_gbps=10.0, attention_window_cta_us=5.0)
    for context, expected_us in ((99, 6.5536), (4095, 5.0 + 6.5536)):
        cost = attention(profile, 1, 8, 1, 128, 1, context, window=128)
        assert cost.memory_s == pytest.approx(expected_us * 1e-6, rel=1e-12), context


def test_the_split_kernels_partial_rows_are_combined_up_to_992_sequences():
    """4 sequences x 32 query heads on 8 KV heads over 4,096 keys: 32 items of 32 blocks,
    blocks_per_sm = ceil(1.1 x 32 x 32 / 100) = 12, ceil(32 / 12) = 3 splits: 4 x 32 x 3 = 384
    partial rows at 2 ns = 0.768 us. 993 sequences run no Split kernel: no combine."""
    base = {"attention_fa3_tiles": 1, "attention_sm_gbps": 10.0}
    with_combine, without = vllm(**base, attention_combine_ns=2.0), vllm(**base)
    extra = (attention(with_combine, 4, 32, 8, 128, 1, 4095).latency_s
             - attention(without, 4, 32, 8, 128, 1, 4095).latency_s)
    assert extra == pytest.approx(384 * 2.0e-9, rel=1e-9)
    assert attention(with_combine, 993, 8, 1, 128, 1, 3).latency_s == attention(without, 993, 8, 1, 128, 1, 3).latency_s


# ---- prefill -----------------------------------------------------------------------------------------
def enumerate_tiles(q_len: int, g: int, block_m: int, block_n: int) -> tuple[int, int, int]:
    """(q-blocks, tiles, longest) of one causal (sequence, KV head) column by walking the kernel's loops:
    q-block j holds packed rows j*M .. (j+1)*M - 1, row r is query position r // g."""
    blocks = math.ceil(q_len * g / block_m)
    counts = [math.ceil(min(q_len, math.ceil((j + 1) * block_m / g)) / block_n) for j in range(blocks)]
    return blocks, sum(counts), max(counts)


@pytest.mark.parametrize("q_len, g, block_m, block_n", [
    (384, 1, 192, 128),  # d 64 bf16: 2 q-blocks of 2 and 3 key blocks, one whole period of 3 / 2
    (3840, 2, 192, 128), (1920, 1, 128, 80), (3200, 4, 128, 160),
])
def test_causal_tiles_of_unequal_blocks_match_the_kernel_loops_at_whole_periods(q_len, g, block_m, block_n):
    blocks, per_column, longest = enumerate_tiles(q_len, g, block_m, block_n)
    tiles = prefill_tiles(shape(q_len, q_len=q_len, q_heads=g), block_m, True, block_n)
    assert (tiles.ctas, float(tiles.tiles), float(tiles.longest)) == (blocks, per_column, longest)
    assert tiles.tile_flops == 2 * 256 * block_m * block_n


@pytest.mark.parametrize("q_len, g", [(1000, 1), (777, 3), (5000, 8)])
def test_causal_tiles_of_unequal_blocks_are_the_periods_mean_in_between(q_len, g):
    _, per_column, _ = enumerate_tiles(q_len, g, 192, 160)
    tiles = prefill_tiles(shape(q_len, q_len=q_len, q_heads=g), 192, True, 160)
    assert float(tiles.tiles) == pytest.approx(per_column, rel=0.03)


def test_the_cache_append_launches_a_thread_block_per_new_token():
    """2 sequences x 1,000 new tokens at token_ns 2: 4 us beside the kernel."""
    base = {"attention_prefill_compute": 0.5, "attention_prefill_latency_us": 1.0}
    extra = (attention(vllm(**base, attention_prefill_token_ns=2.0), 2, 32, 8, 128, 1000, 0).latency_s
             - attention(vllm(**base), 2, 32, 8, 128, 1000, 0).latency_s)
    assert extra == pytest.approx(2 * 1000 * 2.0e-9, rel=1e-9)


def test_a_kernel_without_intra_warpgroup_overlap_pays_its_softmax_between_the_mmas():
    """fp8 cache, d 256 (FA3's 128 x 128 tile, no overlap on paged KV): one sequence, one head, 256
    tokens: q-blocks of 1 and 2 key blocks, 3 tiles, the longest 2; with tail 1 the padded work is
    (3 + 1 x 100 x 2) tiles, each paying serial_flops 100 per score more: 203 x 100 x 128 x 128 FLOP
    at 0.5 of the 400 TFLOP/s peak. A d 128 bf16 prompt (its tile overlaps) pays nothing more."""
    base = {"attention_fa3_tiles": 1, "attention_prefill_compute": 0.5, "attention_prefill_tail": 1.0}
    serial = vllm(**base, attention_prefill_serial_flops=100.0)
    plain = vllm(**base)
    extra = (attention(serial, 1, 1, 1, 256, 256, 0, kv=torch.float8_e4m3fn).compute_s
             - attention(plain, 1, 1, 1, 256, 256, 0, kv=torch.float8_e4m3fn).compute_s)
    assert extra == pytest.approx(203 * 100 * 128 * 128 / (0.5 * PEAK_BF16), rel=1e-9)
    assert attention(serial, 1, 1, 1, 128, 256, 0).compute_s == attention(plain, 1, 1, 1, 128, 256, 0).compute_s


def test_fa3_attention_is_symbolic_safe():
    """The FA3 decode (split gate, combine, window blocks) and prefill (unequal tiles, a window) evaluated
    on B, S, C and substituted equal the concrete evaluation."""
    import sympy

    from tensor_cast.backends.formulas import OpCall, TensorInfo
    from tensor_cast.backends.formulas.attention import kv_cache_attention
    from tensor_cast.backends.roofline import ExecutionMode, op_time
    from tensor_cast.sizes import B, C, S

    profile = vllm(attention_fa3_tiles=1, attention_sm_gbps=10.0, attention_cta_us=2.0, attention_combine_ns=1.0,
                   attention_window_cta_us=1.0, attention_prefill_compute=0.5, attention_prefill_tail=0.5,
                   attention_prefill_token_ns=1.0, attention_prefill_serial_flops=50.0)

    def call(b, s, c, d, window):
        q = TensorInfo(shape=(b, 16, s, d), dtype=torch.bfloat16)
        k = TensorInfo(shape=(b, 8, s, d), dtype=torch.bfloat16)
        out = TensorInfo(shape=(b, s, 16, d), dtype=torch.bfloat16)
        return OpCall(op=torch.ops.tensor_cast.attention.default, args=(q, k, k, c, 0.1, True, window, None),
                      outputs=(out,))

    mode = ExecutionMode("always")
    for d, window in ((64, 128), (128, 0), (256, 1024)):
        expr = op_time(kv_cache_attention(call(B, S, C, d, window)), "attention", profile, mode).time_s
        for b, s, c in ((1, 2048, 0), (64, 1, 4095), (1000, 1, 300), (2, 100, 256)):
            value = op_time(kv_cache_attention(call(b, s, c, d, window)), "attention", profile, mode).time_s
            point = {B: sympy.Integer(b), S: sympy.Integer(s), C: sympy.Integer(c)}
            assert float(expr.xreplace(point)) == pytest.approx(float(value), rel=1e-9), (d, window, b, s, c)


def test_a_prefills_window_kernel_adds_its_per_cta_cost_once_the_prompt_outgrows_the_window():
    """One sequence, one head, d 128 (FA3's 128 x 128 tile), window 128, window_cta_us 5: 1,024 tokens
    are 8 q-blocks, 8 CTAs x 5 us over 100 SMs = 0.4 us; 100 tokens fit the window (FA3 drops it): 0."""
    base = {"attention_fa3_tiles": 1, "attention_prefill_compute": 0.5}
    window, plain = vllm(**base, attention_prefill_window_cta_us=5.0), vllm(**base)
    for q_len, extra_us in ((1024, 8 * 5.0 / SMS), (100, 0.0)):
        extra = (attention(window, 1, 1, 1, 128, q_len, 0, window=128).latency_s
                 - attention(plain, 1, 1, 1, 128, q_len, 0, window=128).latency_s)
        assert extra == pytest.approx(extra_us * 1e-6, rel=1e-9, abs=1e-15), q_len


def test_shapes_fa3_has_no_kernel_for_keep_the_generic_blocks():
    """An fp32 cache or d 512 (another backend in vLLM) walks 128-key blocks: 4,096 keys are 32."""
    for s in (shape(4096, itemsize=4), shape(4096, d=512)):
        assert decode_tiles(s, 128, 128, SMS, 32, fa3=True).blocks == 32
