"""The efficiency models (backends/efficiency.py) on synthetic profiles: limits, monotonicity,
symbolic safety, fallbacks for flat profiles, and the validator. The attention models are in
test_attention_efficiency.py. Expected values are derived
here from the profile's named parameters, never from running the code under test twice."""

from __future__ import annotations

import itertools
import math

import pytest
import sympy
import torch
from synthetic_device import (
    BANDWIDTH_GBPS,
    EAGER_US,
    GRAPH_US,
    IN_GRAPH,
    PEAK_TFLOPS,
    SMS,
    profile_text,
    synthetic,
)

import tensor_cast
from tensor_cast.backends.counts import Counts
from tensor_cast.backends.device import parse_profile
from tensor_cast.backends.efficiency import efficiency_for, uncalibrated_gemm_notes
from tensor_cast.backends.formulas import OpCall, TensorInfo, lookup
from tensor_cast.backends.kernels import GemmShape
from tensor_cast.backends.roofline import ExecutionMode, op_time
from tensor_cast.errors import InvalidProfileError
from tensor_cast.sizes import B, S

GEMM = {"gemm_compute": 0.7, "gemm_memory": 0.8, "gemm_latency_us": 2.0, "gemm_overlap": 0.2,
        "gemm_k_overhead": 200.0, "gemm_splitk_us": 4.0, "vector": 0.5, "memory": 0.75}


def linear_call(m, n, k, dtype=torch.bfloat16) -> tuple[OpCall, object]:
    x = TensorInfo(shape=(m, k) if not isinstance(m, tuple) else (*m, k), dtype=dtype)
    w = TensorInfo(shape=(n, k), dtype=dtype)
    out = TensorInfo(shape=(*x.shape[:-1], n), dtype=dtype)
    call = OpCall(op=torch.ops.aten.linear.default, args=(x, w), outputs=(out,))
    return call, lookup(call.op)


def gemm_time(profile, m, n, k, mode=IN_GRAPH):
    call, entry = linear_call(m, n, k)
    return op_time(entry.rule(call), entry.kind, profile, mode)


# ---- GEMM ---------------------------------------------------------------------------------------
def test_large_gemm_compute_fraction_is_the_measured_ceiling_at_k_8192():
    profile = synthetic(**GEMM)
    call, entry = linear_call(8192, 8192, 8192)
    eff = efficiency_for("gemm", entry.rule(call), profile)
    assert eff.compute == pytest.approx(GEMM["gemm_compute"], rel=1e-12)
    # K -> infinity: the per-tile overhead vanishes, the fraction tends to ceiling * (1 + K0 / 8192)
    call, _ = linear_call(8192, 8192, 8192 * 4096)
    limit = GEMM["gemm_compute"] * (1 + GEMM["gemm_k_overhead"] / 8192)
    assert efficiency_for("gemm", entry.rule(call), profile).compute == pytest.approx(limit, rel=1e-3)


@pytest.mark.parametrize("overlap, scale", [
    # K0 = 1,024 steps of per-tile work, K = 512: a tile takes K + K0 - o * min(K, K0) steps,
    # relative to the ceiling's 8,192 + K0 - o * K0 at K = 8,192
    (0.0, (8192 + 1024) / 8192 * 512 / (512 + 1024)),  # 0.375: the K loop and the tile's store in series
    (0.5, (8192 + 1024 - 512) / 8192 * 512 / (512 + 1024 - 256)),  # 0.425
    (1.0, 8192 / 8192 * 512 / 1024),  # 0.5: max(K, K0); the store of one tile under the next's K loop
])
def test_per_tile_work_hidden_under_the_next_tiles_k_loop(overlap, scale):
    profile = synthetic(gemm_compute=0.5, gemm_k_overhead=1024.0, gemm_epilogue_overlap=overlap)
    call, entry = linear_call(4096, 4096, 512)
    assert efficiency_for("gemm", entry.rule(call), profile).compute == pytest.approx(0.5 * scale, rel=1e-12)
    call, _ = linear_call(4096, 4096, 8192)  # the ceiling's K: the measured fraction whatever the overlap
    assert efficiency_for("gemm", entry.rule(call), profile).compute == pytest.approx(0.5, rel=1e-12)


def test_large_gemm_time_is_compute_over_ceiling_plus_stall_and_latency():
    profile = synthetic(**GEMM)
    m = n = k = 8192
    t = gemm_time(profile, m, n, k)
    compute = 2 * m * n * k / (PEAK_TFLOPS * 1e12 * GEMM["gemm_compute"])
    memory = (2 * (m * k + n * k) + 2 * m * n) / (BANDWIDTH_GBPS * 1e9 * GEMM["gemm_memory"])
    expected = compute + GEMM["gemm_overlap"] * memory + GEMM["gemm_latency_us"] * 1e-6 + GRAPH_US * 1e-6
    assert t.time_s == pytest.approx(expected, rel=1e-9)
    assert t.compute_s > t.memory_s


def test_tiny_gemm_sits_on_the_latency_floor():
    profile = synthetic(**GEMM)
    m, n, k = 1, 64, 64
    t = gemm_time(profile, m, n, k)
    # 64 output columns: one 64-wide CTA of the SMs -> split-K pays (1 - 1/SMs) of gemm_splitk_us
    floor = (GEMM["gemm_latency_us"] + GEMM["gemm_splitk_us"] * (1 - 1 / SMS) + GRAPH_US) * 1e-6
    assert floor < t.time_s < floor * 1.01


def test_gemm_throughput_grows_with_m_and_is_bounded_by_the_limit():
    profile = synthetic(**GEMM)
    n, k = 4096, 4096
    ceiling = PEAK_TFLOPS * 1e12 * GEMM["gemm_compute"] * (1 + GEMM["gemm_k_overhead"] / 8192) / (
        1 + GEMM["gemm_k_overhead"] / k)
    rates = [2 * m * n * k / float(gemm_time(profile, m, n, k).time_s) for m in (2**i for i in range(15))]
    assert all(b >= a for a, b in itertools.pairwise(rates))
    assert rates[-1] < ceiling and rates[-1] > 0.9 * ceiling


def test_small_gemm_streams_weights_at_the_gemm_bandwidth():
    profile = synthetic(**GEMM)
    m, n, k = 16, 65536, 8192  # wide enough that split-K is not needed
    t = gemm_time(profile, m, n, k)
    weights = 2 * n * k
    assert t.memory_s > t.compute_s
    assert t.memory_s == pytest.approx((weights + 2 * m * k + 2 * m * n) / (BANDWIDTH_GBPS * 1e9 * GEMM["gemm_memory"]))


def test_gemm_model_is_symbolic_safe():
    profile = synthetic(**GEMM, gemm_wave_quantization=0.5)
    symbolic = gemm_time(profile, (B, S), 6144, 4096, ExecutionMode("auto"))
    for b, s in ((1, 1), (3, 7), (8, 512), (4, 4096)):
        numeric = gemm_time(profile, b * s, 6144, 4096, ExecutionMode("always" if b * s <= 512 else "never"))
        value = symbolic.time_s.xreplace({B: sympy.Integer(b), S: sympy.Integer(s)})
        assert float(value) == pytest.approx(float(numeric.time_s), rel=1e-9)


def test_wave_quantization_penalizes_a_partial_last_wave():
    quantized = synthetic(**GEMM, gemm_wave_quantization=1.0, gemm_tile_m=128, gemm_tile_n=128)
    # SMS + 1 tiles of 128 x 128 -> two waves for barely more work than one
    one_wave = gemm_time(quantized, 128 * SMS, 128, 8192)
    two_waves = gemm_time(quantized, 128 * (SMS + 1), 128, 8192)
    assert float(two_waves.compute_s) == pytest.approx(2 * float(one_wave.compute_s), rel=1e-9)


# ---- memory-bound kernels ---------------------------------------------------------------------------
def test_memory_bound_bandwidth_ramps_with_bytes():
    profile = synthetic(norm_memory=0.6, norm_memory_latency_us=2.0, vector=0.5)
    hidden = 4096
    achieved = []
    for tokens in (1, 64, 4096, 262144):
        x = torch.empty(tokens, hidden, dtype=torch.bfloat16, device="meta")
        w = torch.empty(hidden, dtype=torch.bfloat16, device="meta")
        cost = tensor_cast.op_cost(torch.ops.tensor_cast.rms_norm.default, x, w, 1e-5, device=profile,
                                   cuda_graphs="always")
        achieved.append(cost.bytes / (cost.time_s - GRAPH_US * 1e-6))
    assert all(b > a for a, b in itertools.pairwise(achieved))
    limit = BANDWIDTH_GBPS * 1e9 * 0.6
    assert achieved[-1] < limit and achieved[-1] > 0.99 * limit
    assert achieved[0] < 0.01 * limit  # a 16 kB row is all ramp


# ---- flat profiles (no model parameters) ------------------------------------------------------------
def test_flat_profile_keeps_the_plain_roofline():
    profile = synthetic(gemm=0.7, vector=0.5, memory=0.75)
    m, n, k = 512, 4096, 4096
    t = gemm_time(profile, m, n, k, ExecutionMode("never"))
    compute = 2 * m * n * k / (PEAK_TFLOPS * 1e12 * 0.7)
    memory = 2 * (m * k + n * k + m * n) / (BANDWIDTH_GBPS * 1e9 * 0.75)
    assert t.latency_s == 0 and t.stall_s == 0
    assert t.time_s == pytest.approx(max(compute, memory) + EAGER_US * 1e-6, rel=1e-12)
    eff = efficiency_for("norm", Counts(), profile)
    assert (eff.compute, eff.vector, eff.memory, eff.latency_s, eff.memory_latency_s) == (0.7, 0.5, 0.75, 0.0, 0.0)


def test_per_precision_ceiling_and_fallback_precision():
    profile = synthetic(gemm_compute=0.7, gemm_compute_fp8=0.6)
    m = n = k = 8192
    x = torch.empty(m, k, dtype=torch.float8_e4m3fn, device="meta")
    w = torch.empty(n, k, dtype=torch.float8_e4m3fn, device="meta")
    cost = tensor_cast.op_cost(torch.ops.aten.linear.default, x, w, device=profile)
    assert cost.compute_s == pytest.approx(2 * m * n * k / (2 * PEAK_TFLOPS * 1e12 * 0.6), rel=1e-12)


# ---- validation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "value", "named"), [
    ("gemm_speed", 0.5, "gemm_speed"),
    ("attention_memroy", 0.5, "attention_memroy"),
    ("gemm_overlap", 1.5, "gemm_overlap"),
    ("norm_memory", 0.0, "norm_memory"),
    ("gemm_latency_us", -1.0, "gemm_latency_us"),
    ("attention_tail", True, "attention_tail"),
])
def test_bad_efficiency_parameters_are_rejected(key, value, named):
    with pytest.raises(InvalidProfileError, match=named):
        synthetic(**{key: value})


# ---- engine GEMM kernels: tile switch, per-SM load limit, host floor; per-tensor quant atomics -------
def hopper(**efficiency: float):
    return parse_profile(profile_text(efficiency).replace('architecture = "test"', 'architecture = "hopper"'),
                         "<synthetic hopper>")


def fp8_gemm_time(profile, m, n, k, mode=IN_GRAPH, variant="fp8"):
    counts = Counts(flops={"fp8": 2 * m * n * k}, bytes_read=m * k + n * k, bytes_written=2 * m * n,
                    kernel=GemmShape(1, m, n, k, variant))
    return op_time(counts, "gemm", profile, mode)


# ---- the per-CTA streaming limit of small-M GEMMs (gemm_<variant>_cta_gbps, gemm_<variant>_splitk_k) ----
CTA = {**GEMM, "gemm_splitk_us": 0.0, "gemm_cta_gbps": 100.0, "gemm_tile_m": 128, "gemm_splitk_tile_n": 64}


def test_few_output_tiles_stream_at_the_rate_of_their_ctas():
    # M = 1, N = 128, K = 2048, bf16: ceil(1 / 128) x ceil(128 / 64) = 2 output tiles of 128 x 64;
    # split K in slices of 1024: 2 CTAs per tile, 4 in all, each reading 1024 x (128 + 64) x 2 bytes
    # = 393,216 bytes at 100 GB/s = 3.93 us, far above the 528,640 bytes' 0.17 us at 80% of 4 TB/s.
    split = gemm_time(synthetic(**CTA, gemm_splitk_k=1024.0), 1, 128, 2048)
    assert float(split.memory_s) == pytest.approx(1024 * (128 + 64) * 2 / 100e9, rel=1e-9)
    # without split-K the 2 CTAs each walk all 2048 of K: twice as long
    whole = gemm_time(synthetic(**CTA), 1, 128, 2048)
    assert float(whole.memory_s) == pytest.approx(2048 * (128 + 64) * 2 / 100e9, rel=1e-9)
    # a wide weight's many CTAs outrun HBM: N = 4096 is 64 tiles x 8 slices = 512 CTAs on the 100 SMs,
    # 64 x 8192 x 384 bytes / (100 x 100 GB/s) = 20.1 us < the weight's 67.1 MB at 3.2 TB/s = 21.0 us
    wide = gemm_time(synthetic(**CTA, gemm_splitk_k=1024.0), 1, 4096, 8192)
    weight_bytes = 2 * (4096 * 8192 + 8192 + 4096)
    assert float(wide.memory_s) == pytest.approx(weight_bytes / (BANDWIDTH_GBPS * 1e9 * GEMM["gemm_memory"]), rel=1e-9)


def test_cta_limit_leaves_gemms_that_fill_the_sms_alone():
    # 8192 x 8192 outputs in 128 x 64 tiles: 8,192 tiles >= 100 SMs: the large-tile kernels, no cap
    capped = gemm_time(synthetic(**CTA, gemm_splitk_k=1024.0), 8192, 8192, 8192)
    free = gemm_time(synthetic(**{k: v for k, v in CTA.items() if k != "gemm_cta_gbps"}), 8192, 8192, 8192)
    assert float(capped.memory_s) == pytest.approx(float(free.memory_s), rel=1e-12)


def test_cta_limit_is_symbolic_safe_in_m():
    profile = synthetic(**CTA, gemm_splitk_k=1024.0)
    expr = gemm_time(profile, B * S, 512, 6144).time_s
    for m in (1, 7, 128, 129, 1500, 2000):  # 2000 rows: 16 x 8 = 128 tiles, more than the SMs
        assert float(expr.xreplace({B: sympy.Integer(1), S: sympy.Integer(m)})) == pytest.approx(
            float(gemm_time(profile, m, 512, 6144).time_s), rel=1e-9)


FP8 = {"gemm_fp8_compute": 0.5, "gemm_fp8_memory": 0.8, "gemm_fp8_wave_quantization": 1.0,
       "gemm_fp8_tile_switch": 1, "vector": 0.5}


@pytest.mark.parametrize("m, n, rows, cols", [
    (8, 8192, 1, 128),  # M <= 16, N > 1280: swap-AB 64x16 tiles (16 rows of M, 64 columns of N)
    (40, 1024, 3, 16),  # 16 < M <= 64, N <= 1280: 16 x 64 tiles
    (100, 8192, 2, 64),  # 64 < M <= 128: 64 x 128 tiles, clusters of 2 along M
    (300, 8192, 4, 64),  # M > 128: 128 x 128, clusters of 2 along M: ceil(300 / 256) x 2 row tiles
])
def test_hopper_fp8_gemm_takes_vllms_tile_for_its_shape(m, n, rows, cols):
    k = 4096
    cost = fp8_gemm_time(hopper(**FP8), m, n, k)
    tiles = rows * cols
    wave = tiles / (math.ceil(tiles / SMS) * SMS)  # every idle slot of the last wave lost (q = 1)
    assert float(cost.compute_s) == pytest.approx(2 * m * n * k / (2 * PEAK_TFLOPS * 1e12 * 0.5 * wave), rel=1e-9)


def test_tile_switch_is_symbolic_safe_in_m():
    profile = hopper(**FP8)
    expr = fp8_gemm_time(profile, B * S, 8192, 4096).time_s
    for m in (1, 16, 17, 64, 65, 128, 129, 5000):
        assert float(expr.xreplace({B: sympy.Integer(1), S: sympy.Integer(m)})) == pytest.approx(
            float(fp8_gemm_time(profile, m, 8192, 4096).time_s), rel=1e-9)


def test_small_tiles_are_capped_by_the_operand_bandwidth_of_one_sm():
    sm_gbps = 100.0
    capped = fp8_gemm_time(hopper(**FP8, gemm_fp8_sm_gbps=sm_gbps), 8, 8192, 4096)
    free = fp8_gemm_time(hopper(**FP8), 8, 8192, 4096)
    intensity = 2 * 16 * 64 / (16 + 64)  # FLOPs per fp8 byte of a 16 x 64 tile
    per_sm = 2 * PEAK_TFLOPS * 1e12 * 0.5 / SMS
    assert float(capped.compute_s) == pytest.approx(float(free.compute_s) * per_sm / (sm_gbps * 1e9 * intensity))


def blackwell(**efficiency: float):
    return parse_profile(profile_text(efficiency).replace('architecture = "test"', 'architecture = "blackwell"'),
                         "<synthetic blackwell>")


@pytest.mark.parametrize("arch, m, n, rows_per_cta", [
    (hopper, 5, 8192, 16),  # M <= 16: swap-AB tile of 16 rows of M; 5 rows still run all 16
    (hopper, 70, 8192, 64),  # 64 < M <= 128: 64-row tiles, 2 of them for 70 rows
    (blackwell, 20, 8192, 64),  # 16 < M <= 64: swap-AB 64-row tiles
    (blackwell, 100, 8192, 64),  # 64 < M <= 256: 128 x 128 tiles of a 2-SM MMA, 64 rows on each CTA
    (blackwell, 300, 8192, 128),  # M > 256: 256 x 128 tiles of a 2-SM MMA, 128 rows on each CTA
])
def test_padded_rows_cost_the_whole_mma_tile(arch, m, n, rows_per_cta):
    k = 4096
    padded = fp8_gemm_time(arch(**FP8, gemm_fp8_pad_rows=1), m, n, k)
    unpadded = fp8_gemm_time(arch(**FP8), m, n, k)
    share = m / (math.ceil(m / rows_per_cta) * rows_per_cta)  # rows M fills of the MMA rows the CTAs compute
    assert float(padded.compute_s) == pytest.approx(float(unpadded.compute_s) / share, rel=1e-9)


@pytest.mark.parametrize("m, n, k, row_ctas, col_ctas", [
    # M <= 16: swap-AB 128 x 32 tile, a 2-SM MMA (cluster 4 x 1 over N: 64 of N per CTA), whole clusters
    # of 4 CTAs = 256 columns: 640 columns -> 3 clusters, 12 CTAs
    (8, 640, 4096, 1, 12),
    (8, 512, 4096, 1, 8),  # 2 whole clusters
    # M = 64 and K < 4096: vLLM does not swap, 64 x 64 x 128 tiles, one CTA each: 640 / 64 = 10
    (64, 640, 2048, 1, 10),
    # M = 64 with K >= 4096 (and 16 < M < 64 at any K): swap-AB 128 x 64 2-SM tiles, clusters of 4
    (64, 640, 4096, 1, 12),
    (40, 640, 2048, 1, 12),
    (40, 8192, 2048, 1, 128),
    # 64 < M <= 256: 128 x 128 2-SM tiles, cluster 2 x 1: 64 rows per CTA, 128 rows per pair
    (100, 8192, 4096, 2, 64),
    (200, 8192, 4096, 4, 64),
    # M > 256: 256 x 128 2-SM tiles, cluster 2 x 2: 128 rows per CTA, columns in pairs of tiles
    (300, 8192, 4096, 4, 64),
    (300, 640, 4096, 4, 6),  # 5 column tiles -> 3 clusters of 2
])
def test_blackwell_fp8_gemm_launches_vllms_ctas_for_its_shape(m, n, k, row_ctas, col_ctas):
    """vLLM's sm100 dispatch (scaled_mm_sm100_fp8_dispatch.cuh) as CUTLASS builds it: every config
    but the unswapped M = 64 one has an even cluster along its (swapped) M and a 128-multiple tile
    M, so KernelScheduleAuto builds the 2-SM MMA (two CTAs per tile); CTAs launch in whole clusters."""
    cost = fp8_gemm_time(blackwell(**FP8), m, n, k)
    ctas = row_ctas * col_ctas
    wave = ctas / (math.ceil(ctas / SMS) * SMS)  # q = 1: every idle slot of the last wave lost
    assert float(cost.compute_s) == pytest.approx(2 * m * n * k / (2 * PEAK_TFLOPS * 1e12 * 0.5 * wave), rel=1e-9)


def test_a_2sm_tile_splits_along_m_or_n_only():
    from tensor_cast.backends.gemm_tiles import Tile

    assert (Tile(256, 128, pair="m").cta_m, Tile(32, 128, pair="n").cta_n) == (128, 64)
    with pytest.raises(ValueError, match="pair must be"):
        Tile(128, 128, pair="k")


def test_blackwell_k_switch_is_symbolic_safe_in_m():
    profile = blackwell(**FP8)
    for k in (2048, 4096):
        expr = fp8_gemm_time(profile, B * S, 640, k).time_s
        for m in (16, 17, 63, 64, 65, 300):
            assert float(expr.xreplace({B: sympy.Integer(1), S: sympy.Integer(m)})) == pytest.approx(
                float(fp8_gemm_time(profile, m, 640, k).time_s), rel=1e-9)


def test_padded_rows_are_symbolic_safe_in_m():
    profile = blackwell(**FP8, gemm_fp8_pad_rows=1)
    expr = fp8_gemm_time(profile, B * S, 8192, 4096).time_s
    for m in (1, 16, 17, 64, 65, 256, 257, 5000):
        assert float(expr.xreplace({B: sympy.Integer(1), S: sympy.Integer(m)})) == pytest.approx(
            float(fp8_gemm_time(profile, m, 8192, 4096).time_s), rel=1e-9)


def test_host_floor_applies_to_eager_calls_only():
    profile = hopper(**FP8, gemm_fp8_block_call_floor_us=80.0)
    small = (16, 256, 128)
    eager = fp8_gemm_time(profile, *small, mode=ExecutionMode("never"), variant="fp8_block")
    graph = fp8_gemm_time(profile, *small, mode=IN_GRAPH, variant="fp8_block")
    assert float(eager.time_s) == pytest.approx(80e-6)
    assert float(graph.time_s) < 10e-6
    big = (8192, 8192, 8192)  # GPU time beyond the floor: the floor is hidden, not added
    no_floor = hopper(**FP8)
    assert float(fp8_gemm_time(profile, *big, mode=ExecutionMode("never"), variant="fp8_block").time_s) == \
        pytest.approx(float(fp8_gemm_time(no_floor, *big, mode=ExecutionMode("never"), variant="fp8_block").time_s))


def test_unaligned_m_pays_the_scale_relayout_floor():
    # DeepGEMM's fp32 per-token scales need 16-byte aligned rows: M a multiple of 4 keeps the 80 us
    # floor, M = 13 (13 x 4 = 52 bytes) pays 80 + 50 us; a CUDA-graph replay pays neither
    profile = hopper(**FP8, gemm_fp8_block_call_floor_us=80.0, gemm_fp8_block_unaligned_floor_us=50.0)
    eager = ExecutionMode("never")
    assert float(fp8_gemm_time(profile, 16, 256, 128, mode=eager, variant="fp8_block").time_s) == pytest.approx(80e-6)
    assert float(fp8_gemm_time(profile, 13, 256, 128, mode=eager, variant="fp8_block").time_s) == pytest.approx(130e-6)
    assert float(fp8_gemm_time(profile, 13, 256, 128, mode=IN_GRAPH, variant="fp8_block").time_s) < 10e-6
    expr = fp8_gemm_time(profile, B * S, 256, 128, mode=eager, variant="fp8_block").time_s
    for m, floor in ((12, 80e-6), (13, 130e-6), (14, 130e-6), (1024, 80e-6)):
        assert float(expr.xreplace({B: sympy.Integer(1), S: sympy.Integer(m)})) == pytest.approx(floor)


def test_dynamic_per_tensor_quantization_pays_one_atomic_per_row():
    from tensor_cast.deployment.quantization import PER_TENSOR, PER_TOKEN

    rows, hidden, atomic_ns = 4096, 1024, 7.0
    profile = synthetic(quant_memory=0.5, quant_atomic_ns=atomic_ns)
    x = torch.empty(rows, hidden, dtype=torch.bfloat16, device="meta")

    def latency(group):
        return tensor_cast.op_cost(torch.ops.tensor_cast.quantize.default, x, "fp8", group, True, device=profile,
                                   cuda_graphs="always").latency_s

    assert latency(PER_TENSOR) == pytest.approx(rows * atomic_ns * 1e-9)
    assert latency(PER_TOKEN) == 0  # the scale of a row is found inside its own CTA


@pytest.mark.parametrize("hidden, iterations", [(32, 1), (2048, 1), (2049, 2), (5120, 3), (65536, 32)])
def test_dynamic_per_tensor_quantization_walks_rows_in_whole_iterations(hidden, iterations):
    """vLLM's per-tensor quantization runs one 256-thread block per row, 8 bf16 per 16-byte vector:
    2,048 elements an iteration. A row of K elements streams the bytes of ceil(K / 2048) x 2048
    (B200: 6.3-6.6 ns per row for every K <= 2,048, one more ~3.8 ns step per 2,048 of K)."""
    from tensor_cast.deployment.quantization import PER_TENSOR, PER_TOKEN

    rows, memory, bandwidth = 4096, 0.5, BANDWIDTH_GBPS * 1e9
    # the two per-tensor kernels at their own fraction, the one-pass per-token kernel at quant_memory
    walked = synthetic(quant_memory=0.9, quant_per_tensor_memory=memory, quant_row_elements=2048)
    plain = synthetic(quant_memory=memory)

    def cost(profile, group=PER_TENSOR):
        x = torch.empty(rows, hidden, dtype=torch.bfloat16, device="meta")
        return tensor_cast.op_cost(torch.ops.tensor_cast.quantize.default, x, "fp8", group, True, device=profile,
                                   cuda_graphs="always")

    # the counted bytes: bf16 input read twice (amax pass, quantizing pass), fp8 output, one fp32 scale
    assert cost(plain).bytes == rows * hidden * (2 * 2 + 1) + 4
    padded = iterations * 2048
    assert cost(walked).memory_s == pytest.approx(cost(plain).bytes * padded / hidden / (bandwidth * memory), rel=1e-9)
    per_token = cost(plain, PER_TOKEN)  # one pass, no walk, at quant_memory
    assert cost(walked, PER_TOKEN).memory_s == pytest.approx(per_token.bytes / (bandwidth * 0.9), rel=1e-9)


def test_tile_switch_needs_a_table_for_the_architecture():
    with pytest.raises(InvalidProfileError, match="tile-switch table.*'test'.*hopper, blackwell"):
        fp8_gemm_time(synthetic(**FP8), 300, 8192, 4096)


def test_a_quantized_gemm_without_its_own_kernel_fit_is_said_not_silently_generic():
    section = {"gemm_compute": 0.7, "gemm_bf16_compute": 0.8, "gemm_fp8_compute": 0.6}
    assert uncalibrated_gemm_notes(["bf16", "nvfp4", "fp8", "nvfp4"], section, "vllm", "b200") == (
        "engine vllm on b200: no nvfp4 GEMM kernel is calibrated (fitted: bf16, fp8); its nvfp4 GEMMs are "
        "costed with the section's generic GEMM parameters",)
    # fitted variants and bf16 say nothing, nor does a section that fits no variant (generic is all it has)
    assert uncalibrated_gemm_notes(["fp8", "bf16"], section, "vllm", "b200") == ()
    assert uncalibrated_gemm_notes(["nvfp4"], {"gemm_compute": 0.7}, "torch", "b200") == ()


def test_analyze_says_when_the_engine_section_has_no_fit_of_the_weights_gemm_kernel():
    """The shipped H100 vLLM section fits bf16, fp8 and fp8_block GEMMs, not int8 (AIConfigurator's tables
    hold none); B200's fits NVFP4 (FlashInfer CuTe DSL rows)."""
    def notes(device, quant, engine="vllm"):
        return tensor_cast.analyze("meta-llama/Llama-3.1-8B", device=device, engine=engine, batch_size=1,
                                   query_len=1, context_len=128, quant=quant, num_hidden_layers=1).context.notes
    assert any("no w8a8_int8 GEMM kernel is calibrated" in n for n in notes("h100-sxm", "w8a8_int8"))
    # TensorRT-LLM borrows B200's vllm section without vLLM's NVFP4 kernel fit (backends/engines.py GEMM_KERNELS)
    assert any(n.startswith("engine trtllm on b200: no nvfp4 GEMM kernel is calibrated") for n in notes("b200", "nvfp4", "trtllm"))
    assert not any("GEMM kernel is calibrated" in n for n in notes("b200", "nvfp4") + notes("h100-sxm", "fp8"))
    # the variants the costed GEMMs run, not the deployment's scheme: gpt-oss's MXFP4 is its experts', its
    # linears are bf16
    gpt_oss = tensor_cast.analyze("openai/gpt-oss-120b", device="gb200", engine="trtllm", batch_size=1,
                                  query_len=1, context_len=128, num_hidden_layers=1).context.notes
    assert not any("GEMM kernel is calibrated" in n for n in gpt_oss)
