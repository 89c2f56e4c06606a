"""Cost formulas through the public `op_cost` API, against counts derived here from named dims."""

from __future__ import annotations

import pytest
import torch

import tensor_cast
from tensor_cast.backends.counts import Counts
from tensor_cast.errors import UnknownOpError

aten, tc = torch.ops.aten, torch.ops.tensor_cast
BF16 = 2


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(*shape, dtype=dtype, device="meta")


def test_gemm_flops_and_bytes():
    m, k, n = 4096, 8192, 2048
    cost = tensor_cast.op_cost(aten.mm.default, meta(m, k), meta(k, n), device="h100-sxm")
    assert cost.kind == "gemm"
    assert cost.flops == 2 * m * n * k
    assert cost.bytes == (m * k + k * n + m * n) * BF16
    assert cost.bound == "compute"
    assert cost.counts.flops == {"bf16": 2 * m * n * k}


def test_small_m_gemm_is_memory_bound():
    m, k, n = 1, 4096, 14336
    cost = tensor_cast.op_cost(aten.mm.default, meta(m, k), meta(k, n), device="h100-sxm")
    assert cost.bytes == (m * k + k * n + m * n) * BF16
    assert cost.bound == "memory"
    assert cost.memory_s > cost.compute_s


def test_linear_with_bias():
    tokens, k, n = 7, 64, 96
    cost = tensor_cast.op_cost(aten.linear.default, meta(tokens, k), meta(n, k), meta(n), device="h100-sxm")
    assert cost.flops == 2 * tokens * n * k + tokens * n
    assert cost.bytes == (tokens * k + n * k + n + tokens * n) * BF16


def test_fp32_matmul_runs_on_cuda_cores():
    cost = tensor_cast.op_cost(aten.mm.default, meta(64, 64, dtype=torch.float32), meta(64, 64, dtype=torch.float32),
                               device="h100-sxm")
    assert set(cost.counts.flops) == {"fp32"}


def attention(batch, q_heads, kv_heads, q_len, context, head_dim, *, causal=True, window=0):
    return tensor_cast.op_cost(
        tc.attention.default, meta(batch, q_heads, q_len, head_dim), meta(batch, kv_heads, q_len, head_dim),
        meta(batch, kv_heads, q_len, head_dim), context, head_dim ** -0.5, causal, window, None, device="h100-sxm")


def test_causal_prefill_counts_half_the_scores():
    b, hq, hkv, s, d = 2, 32, 8, 1024, 128
    cost = attention(b, hq, hkv, s, 0, d)
    pairs = b * hq * s * (s + 1) // 2  # query i attends i + 1 keys
    assert cost.counts.flops["bf16"] == 2 * pairs * (d + d)
    full = attention(b, hq, hkv, s, 0, d, causal=False)
    assert full.counts.flops["bf16"] == 2 * b * hq * s * s * 2 * d


def test_decode_reads_kv_once_per_kv_head():
    b, hq, hkv, c, d = 16, 64, 8, 8192, 128
    cost = attention(b, hq, hkv, 1, c, d)
    kv_token = hkv * 2 * d * BF16  # K and V of one token, every KV head
    q_out = 2 * b * hq * d * BF16
    assert cost.bytes == b * (c + 1) * kv_token + 2 * b * kv_token + q_out  # cache read + append
    assert cost.counts.state_bytes == b * (c + 1) * kv_token
    assert cost.counts.flops["bf16"] == 2 * b * hq * (c + 1) * 2 * d
    assert cost.bound == "memory"


def test_sliding_window_caps_the_context():
    b, hq, hkv, c, d, w = 4, 8, 2, 100_000, 64, 4096
    decode = attention(b, hq, hkv, 1, c, d, window=w)
    assert decode.counts.flops["bf16"] == 2 * b * hq * w * 2 * d
    assert decode.counts.state_bytes == b * w * hkv * 2 * d * BF16
    s = 6000  # a prefill longer than the window: first w queries grow, the rest see w keys
    prefill = attention(1, hq, hkv, s, 0, d, window=w)
    pairs = sum(min(i + 1, w) for i in range(s))
    assert prefill.counts.flops["bf16"] == 2 * hq * pairs * 2 * d


def test_chunked_prefill_attends_cached_and_new_tokens():
    b, h, s, c, d = 1, 4, 512, 1000, 64
    cost = attention(b, h, h, s, c, d)
    pairs = h * (s * c + s * (s + 1) // 2)
    assert cost.counts.flops["bf16"] == 2 * pairs * 2 * d


def test_unknown_op_is_an_error_not_zero():
    with pytest.raises(UnknownOpError, match="no cost rule for op aten.fft_fft"):
        tensor_cast.op_cost(aten.fft_fft.default, meta(8, dtype=torch.complex64), device="h100-sxm")


def test_counts_add():
    a = Counts(flops={"bf16": 10}, bytes_read=3, bytes_written=4, launches=1)
    b = Counts(flops={"bf16": 5, "vector": 2}, bytes_read=1, launches=2)
    total = a + b
    assert dict(total.flops) == {"bf16": 15, "vector": 2}
    assert (total.bytes_read, total.bytes_written, total.launches) == (4, 4, 3)
    with pytest.raises(ValueError, match="unknown precision"):
        Counts(flops={"bf17": 1})


def test_roofline_time_is_max_plus_overhead():
    m = k = n = 8192
    cost = tensor_cast.op_cost(aten.mm.default, meta(m, k), meta(k, n), device="h100-sxm")
    # the roofline bound, plus the kernel's own latency and non-overlapped part, plus the launch gap
    assert cost.time_s == pytest.approx(max(cost.compute_s, cost.memory_s) + cost.latency_s + cost.overhead_s)
    assert cost.overhead_s > 0 and cost.latency_s >= 0


@pytest.mark.parametrize("op, order", [(aten.embedding.default, "weight_first"), (torch.nn.functional.embedding, "indices_first")])
def test_embedding_gathers_only_the_selected_rows(op, order):
    from tensor_cast.backends.formulas import OpCall, TensorInfo, lookup

    tokens, vocab, hidden = 16, 128256, 4096
    weight = TensorInfo((vocab, hidden), torch.bfloat16)
    indices = TensorInfo((tokens,), torch.int64)
    out = TensorInfo((tokens, hidden), torch.bfloat16)
    args = (weight, indices) if order == "weight_first" else (indices, weight)
    counts = lookup(op).rule(OpCall(op=op, args=args, outputs=(out,)))
    assert counts.bytes_read == tokens * hidden * BF16 + tokens * 8
    assert counts.bytes_written == tokens * hidden * BF16
