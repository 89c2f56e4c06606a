"""The attention efficiency models (backends/attention_efficiency.py) on synthetic profiles: decode
bound by the KV read, the prefill tail and tiles, the cache append's rounds, FlashAttention-3's
window and short-prompt rules, and symbolic safety. Expected values are derived here from the
profile's named parameters, never from running the code under test twice."""

from __future__ import annotations

import itertools
import math

import pytest
import sympy
import torch
from synthetic_device import BANDWIDTH_GBPS, GRAPH_US, IN_GRAPH, PEAK_TFLOPS, SMS, synthetic

import tensor_cast
from tensor_cast.backends.formulas import OpCall, TensorInfo
from tensor_cast.backends.formulas.attention import kv_cache_attention
from tensor_cast.backends.roofline import ExecutionMode, op_time
from tensor_cast.sizes import B, C, S

ATTENTION = {"attention_compute": 0.6, "attention_memory": 0.9, "attention_latency_us": 1.5,
             "attention_memory_latency_us": 3.0, "attention_tail": 1.0, "vector": 0.5}


# ---- attention ------------------------------------------------------------------------------------
def sdpa_time(profile, batch, q_len, k_len, hq=32, hkv=8, d=128, causal=True):
    q = torch.empty(batch, hq, q_len, d, dtype=torch.bfloat16, device="meta")
    k = torch.empty(batch, hkv, k_len, d, dtype=torch.bfloat16, device="meta")
    return tensor_cast.op_cost(torch.ops.aten.scaled_dot_product_attention.default, q, k, k, is_causal=causal,
                               enable_gqa=True, device=profile, cuda_graphs="always")


def test_decode_attention_is_kv_read_bound():
    profile = synthetic(**ATTENTION)
    batch, length, hq, hkv, d = 64, 4096, 32, 8, 128
    cost = sdpa_time(profile, batch, 1, length, hq, hkv, d, causal=False)
    kv = 2 * batch * hkv * length * d * 2
    q_and_out = 2 * batch * hq * d * 2
    expected = ((kv + q_and_out) / (BANDWIDTH_GBPS * 1e9 * ATTENTION["attention_memory"])
                + (ATTENTION["attention_memory_latency_us"] + ATTENTION["attention_latency_us"] + GRAPH_US) * 1e-6)
    assert cost.bound == "memory"
    assert cost.time_s == pytest.approx(expected, rel=1e-9)


def test_prefill_attention_tail_is_the_longest_cta():
    profile = synthetic(**ATTENTION)
    batch, s, hq, d = 1, 4096, 32, 128
    cost = sdpa_time(profile, batch, s, s, hq=hq, d=d)
    tensor = 4 * d * batch * hq * s * (s + 1) / 2  # causal pairs, QK^T and PV
    softmax = 4 * batch * hq * s * (s + 1) / 2
    longest = 4 * d * 128 * s  # the last q-block of 128 rows attends all S keys
    rate = PEAK_TFLOPS * 1e12 * ATTENTION["attention_compute"]
    expected_compute = (tensor + ATTENTION["attention_tail"] * SMS * longest) / rate + softmax / (50e12 * 0.5)
    assert cost.compute_s == pytest.approx(expected_compute, rel=1e-9)


def test_more_ctas_amortize_the_attention_tail():
    profile = synthetic(**ATTENTION)
    per_sequence = [sdpa_time(profile, b, 2048, 2048).time_s / b for b in (1, 2, 4, 16, 64)]
    assert all(b < a for a, b in itertools.pairwise(per_sequence))


def test_attention_model_is_symbolic_safe_with_a_context_symbol():
    from tensor_cast.backends.formulas.attention import kv_cache_attention

    profile = synthetic(**ATTENTION)

    def call(b, s, c):
        q = TensorInfo(shape=(b, 32, s, 128), dtype=torch.bfloat16)
        k = TensorInfo(shape=(b, 8, s, 128), dtype=torch.bfloat16)
        out = TensorInfo(shape=(b, s, 32, 128), dtype=torch.bfloat16)
        return OpCall(op=torch.ops.tensor_cast.attention.default, args=(q, k, k, c, 0.1, True, 0, None), outputs=(out,))

    symbolic = call(B, S, C)
    expr = op_time(kv_cache_attention(symbolic), "attention", profile, ExecutionMode("always")).time_s
    for b, s, c in ((1, 2048, 0), (64, 1, 4096), (2, 100, 300)):
        concrete = call(b, s, c)
        value = op_time(kv_cache_attention(concrete), "attention", profile, ExecutionMode("always")).time_s
        assert float(expr.xreplace({B: sympy.Integer(b), S: sympy.Integer(s), C: sympy.Integer(c)})) == pytest.approx(float(value), rel=1e-9)


# ---- tiled prefill (engine sections) ----------------------------------------------------------------
PREFILL = {"attention_compute": 0.6, "attention_memory": 0.9, "attention_latency_us": 1.5, "attention_tail": 1.0,
           "vector": 0.5, "attention_prefill_compute": 0.7, "attention_prefill_latency_us": 6.0,
           "attention_prefill_cta_us": 3.0, "attention_prefill_tail": 0.5, "attention_prefill_kv_ns": 0.25,
           "attention_prefill_pack_gqa": 1, "attention_prefill_block": 128}


def prefill_call(b, s, c, hq=32, hkv=8, d=128, window=0):
    q = TensorInfo(shape=(b, hq, s, d), dtype=torch.bfloat16)
    k = TensorInfo(shape=(b, hkv, s, d), dtype=torch.bfloat16)
    out = TensorInfo(shape=(b, s, hq, d), dtype=torch.bfloat16)
    return OpCall(op=torch.ops.tensor_cast.attention.default, args=(q, k, k, c, 0.1, True, window, None),
                  outputs=(out,))


def test_prefill_time_is_padded_tiles_plus_tail_plus_per_cta_and_per_token_costs():
    profile = synthetic(**PREFILL)
    b, s, hq, hkv, d = 2, 1000, 32, 8, 128
    cost = op_time(kv_cache_attention(prefill_call(b, s, 0)), "attention", profile, ExecutionMode("always"))
    # 1000 positions x 4 packed heads = 4000 rows: 32 q-blocks of 128 rows (32 positions each);
    # q-block j (1-based) reaches position 32j: ceil(j / 4) key blocks; the last one 8
    per_column, longest = sum(math.ceil(j / 4) for j in range(1, 33)), 8
    tile = 4 * d * 128 * 128
    softmax = 4 * b * hq * s * (s + 1) / 2
    compute = ((b * hkv * per_column + PREFILL["attention_prefill_tail"] * SMS * longest) * tile
               / (PEAK_TFLOPS * 1e12 * PREFILL["attention_prefill_compute"]) + softmax / (50e12 * 0.5))
    ctas = b * hkv * math.ceil(s * hq / hkv / 128)
    latency_us = (PREFILL["attention_prefill_latency_us"]
                  + PREFILL["attention_prefill_cta_us"] * (ctas / SMS + PREFILL["attention_prefill_tail"])
                  + PREFILL["attention_prefill_kv_ns"] * 1e-3 * b * s * hkv)
    assert float(cost.compute_s) == pytest.approx(compute, rel=1e-9)
    assert float(cost.time_s) == pytest.approx(max(compute, float(cost.memory_s)) + (latency_us + 2 * GRAPH_US) * 1e-6,
                                               rel=1e-9)


def test_prefill_query_quantization_softmax_per_score_and_the_append_outside_the_kernels_bytes():
    """The three terms beside the tiles, by hand on B = 2 x 1000 tokens, 32 / 8 heads, d = 128:
    the query's quantization (q_ns per token and query head), the softmax the MMAs do not hide
    (score_flops per score of every padded 128 x 128 tile) and the attention kernel's own bytes (the
    cache append, new K/V read and written, left to kv_ns) at prefill_memory of HBM."""
    extra = {"attention_prefill_q_ns": 0.1, "attention_prefill_score_flops": 64.0, "attention_prefill_memory": 0.5}
    profile = synthetic(**PREFILL, **extra)
    b, s, hq, hkv, d = 2, 1000, 32, 8, 128
    counts = kv_cache_attention(prefill_call(b, s, 0))
    cost = op_time(counts, "attention", profile, ExecutionMode("always"))
    per_column, longest = sum(math.ceil(j / 4) for j in range(1, 33)), 8  # as in the test above
    tile = (4 * d + 64) * 128 * 128  # QK^T and PV, plus the softmax's 64 FLOP-equivalents per score
    softmax = 4 * b * hq * s * (s + 1) / 2
    compute = ((b * hkv * per_column + PREFILL["attention_prefill_tail"] * SMS * longest) * tile
               / (PEAK_TFLOPS * 1e12 * PREFILL["attention_prefill_compute"]) + softmax / (50e12 * 0.5))
    assert float(cost.compute_s) == pytest.approx(compute, rel=1e-9)
    q = o = b * s * hq * d * 2
    append = b * s * hkv * 2 * d * 2  # new K and V, bf16
    assert counts.bytes == q + o + 3 * append  # the kernel reads the cached K/V (= the new ones here) once
    assert float(cost.memory_s) == pytest.approx((q + o + append) / (BANDWIDTH_GBPS * 1e9 * 0.5), rel=1e-9)
    ctas = b * hkv * math.ceil(s * hq / hkv / 128)
    latency_us = (PREFILL["attention_prefill_latency_us"]
                  + PREFILL["attention_prefill_cta_us"] * (ctas / SMS + PREFILL["attention_prefill_tail"])
                  + PREFILL["attention_prefill_kv_ns"] * 1e-3 * b * s * hkv + 0.1e-3 * b * s * hq)
    assert float(cost.latency_s) == pytest.approx(latency_us * 1e-6, rel=1e-9)


def test_one_query_per_sequence_keeps_the_decode_model():
    with_prefill = synthetic(**PREFILL)
    without = synthetic(**{k: v for k, v in PREFILL.items() if "prefill" not in k})
    decode = prefill_call(64, 1, 4096)
    times = [op_time(kv_cache_attention(decode), "attention", p, ExecutionMode("always")).time_s
             for p in (with_prefill, without)]
    assert times[0] == times[1]


def test_tiled_prefill_is_symbolic_safe():
    profile = synthetic(**PREFILL)
    expr = op_time(kv_cache_attention(prefill_call(B, S, C)), "attention", profile, ExecutionMode("always")).time_s
    for b, s, c in ((1, 2048, 0), (64, 1, 4096), (2, 100, 256), (4, 16, 0)):
        value = op_time(kv_cache_attention(prefill_call(b, s, c)), "attention", profile, ExecutionMode("always")).time_s
        point = {B: sympy.Integer(b), S: sympy.Integer(s), C: sympy.Integer(c)}
        assert float(expr.xreplace(point)) == pytest.approx(float(value), rel=1e-9)


# the cache append's launch (vLLM reshape_and_cache_flash) and the SM limits it runs under
APPEND = {"attention_append_threads": 512, "attention_sm_threads": 2048, "attention_sm_blocks": 32,
          "attention_prefill_append_block_us": 2.0}


@pytest.mark.parametrize("hq, hkv, d, rounds", [
    (32, 8, 128, 5.0),   # 8 x 128 -> 512 threads a block, 4 resident per SM: 2,000 tokens / (100 SMs x 4)
    (8, 1, 64, 0.625),   # 64 threads, 32 resident (the block limit): 2,000 / 3,200
    (16, 2, 128, 2.5),   # 256 threads, 8 resident: 2,000 / 800
])
def test_prefill_pays_the_cache_appends_rounds_of_resident_blocks(hq, hkv, d, rounds):
    """One append block per new token, min(KV heads x d, 512) threads, min(32, 2,048 / threads) resident per
    SM: each round of them costs append_block_us (2 us), by hand on B = 2 x 1000 tokens, 100 SMs."""
    call = kv_cache_attention(prefill_call(2, 1000, 0, hq=hq, hkv=hkv, d=d))
    with_append = op_time(call, "attention", synthetic(**PREFILL, **APPEND), IN_GRAPH).latency_s
    without = op_time(call, "attention", synthetic(**PREFILL), IN_GRAPH).latency_s
    assert float(with_append - without) == pytest.approx(rounds * 2.0e-6, rel=1e-9)


FA3 = {**PREFILL, "attention_fa3_tiles": 1, "attention_prefill_window_cta_us": 1.0,
       "attention_prefill_serial_flops": 256.0}


def test_a_window_covering_the_prompt_runs_the_causal_kernel():
    """FA3 drops a window as long as the keys (flash_api.cpp: window_size_left = W - 1 >= seqlen_k - 1):
    a 128-token prompt under a 128-key window costs the causal kernel (192 x 128 tile at d = 64, overlapped
    softmax), a 1,000-token one the local kernel (192 x 160 tile, serial softmax, its CTA cost)."""
    profile = synthetic(**FA3)

    def time(s, window):
        return float(op_time(kv_cache_attention(prefill_call(2, s, 0, d=64, window=window)), "attention", profile,
                             IN_GRAPH).time_s)

    assert time(128, 128) == time(128, 0)
    assert time(100, 128) == time(100, 0)
    assert time(1000, 128) != time(1000, 0)
    # symbolic S: the blend picks the same kernel as the concrete size on either side of the window
    expr = op_time(kv_cache_attention(prefill_call(2, S, 0, d=64, window=128)), "attention", profile,
                   IN_GRAPH).time_s
    for s in (100, 128, 1000):
        assert float(expr.xreplace({S: sympy.Integer(s)})) == pytest.approx(time(s, 128), rel=1e-9)


@pytest.mark.parametrize("s, block_m", [(64, 64), (65, 128)])
def test_a_short_prompt_runs_fa3s_one_warpgroup_tile(s, block_m):
    """At most 64 query rows (8 / 8 heads, d = 128, PackGQA) run FA3's one-MMA-warpgroup kernel: one 64 x 128
    tile a column at 64 tokens, one 128 x 128 tile at 65, by hand (B = 2: 16 columns, 100 SMs)."""
    b, hq, hkv, d = 2, 8, 8, 128
    cost = op_time(kv_cache_attention(prefill_call(b, s, 0, hq=hq, hkv=hkv, d=d)), "attention", synthetic(**FA3),
                   IN_GRAPH)
    tile = 4 * d * block_m * 128
    softmax = 4 * b * hq * s * (s + 1) / 2
    compute = ((b * hkv + PREFILL["attention_prefill_tail"] * SMS) * tile
               / (PEAK_TFLOPS * 1e12 * PREFILL["attention_prefill_compute"]) + softmax / (50e12 * 0.5))
    assert float(cost.compute_s) == pytest.approx(compute, rel=1e-9)
    expr = op_time(kv_cache_attention(prefill_call(b, S, 0, hq=hq, hkv=hkv, d=d)), "attention", synthetic(**FA3),
                   IN_GRAPH).time_s
    assert float(expr.xreplace({S: sympy.Integer(s)})) == pytest.approx(float(cost.time_s), rel=1e-9)


def test_tiled_prefill_with_append_and_window_is_symbolic_safe():
    profile = synthetic(**FA3, **APPEND)
    expr = op_time(kv_cache_attention(prefill_call(B, S, C, window=256)), "attention", profile, IN_GRAPH).time_s
    for b, s, c in ((1, 2048, 0), (2, 100, 256), (4, 16, 0), (3, 300, 0)):
        value = op_time(kv_cache_attention(prefill_call(b, s, c, window=256)), "attention", profile, IN_GRAPH).time_s
        point = {B: sympy.Integer(b), S: sympy.Integer(s), C: sympy.Integer(c)}
        assert float(expr.xreplace(point)) == pytest.approx(float(value), rel=1e-9)
