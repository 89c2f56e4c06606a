"""The fused-MoE kernel model (backends/moe_tiles.py): the kernel and M tile per architecture and
scheme, the expected padded rows of a routed layer (exact and random rows per expert), the padding,
K-overhead and weight re-read terms of the efficiency, the skew bins of the kernel shape, and the
AIC table helpers (scheme mapping, the balanced and power-law routings the tables were measured
with). Every expected number is derived here from named dimensions; no shared data is read."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import sympy
import torch
from benchmark_modules import benchmarks
from profile_text import profile_head, profile_sources

from tensor_cast.backends.counts import Counts
from tensor_cast.backends.device import parse_profile
from tensor_cast.backends.efficiency import base_efficiency, efficiency_for
from tensor_cast.backends.formulas import OpCall
from tensor_cast.backends.formulas.moe import moe, rank_bins
from tensor_cast.backends.kernels import MoEShape
from tensor_cast.backends.moe_tiles import (
    expected_tiles,
    kernel_for,
    l2_resident_share,
    padded_rows,
    routing_path_s,
    tile_rows,
)
from tensor_cast.sizes import B

tc = torch.ops.tensor_cast


def profile(architecture: str, efficiency: str):
    text = profile_head("moe-gpu", "MoE GPU").replace('architecture = "x1"', f'architecture = "{architecture}"')
    return parse_profile(text + "\n[efficiency.vllm]\n" + efficiency + "\n" + profile_sources()
                         + '"efficiency" = "a test"\n', engine="vllm")


# ---- kernels and tiles --------------------------------------------------------------------------
def test_kernel_per_architecture_and_scheme():
    assert kernel_for("hopper", "bf16") == "triton" and kernel_for("hopper", "fp8") == "cutlass"
    assert kernel_for("hopper", "mxfp4") == "oai_triton" and kernel_for("hopper", "w4a16") == "marlin"
    assert kernel_for("blackwell", "nvfp4") == "trtllm" and kernel_for("blackwell", "fp8_block") == "trtllm"
    assert kernel_for("x1", "bf16") == ""


@pytest.mark.parametrize(("kernel", "variant", "rows", "tile"), [
    ("trtllm", "fp8_block", 1.0, 8), ("trtllm", "fp8_block", 8.0, 8), ("trtllm", "fp8_block", 9.0, 16),
    ("trtllm", "bf16", 24.0, 32), ("trtllm", "bf16", 500.0, 64),  # TRT-LLM: next power of two in [8, 64]
    ("triton", "bf16", 1.0, 16), ("triton", "bf16", 40.0, 64), ("triton", "bf16", 300.0, 64),
    ("triton", "fp8_block", 20.0, 32), ("triton", "fp8_block", 100.0, 64),
    ("oai_triton", "mxfp4", 100.0, 128),
    ("marlin", "w4a16", 7.0, 8), ("marlin", "w4a16", 8.0, 16),  # 8 / 8 = 1 >= 0.9: the next block
    ("cutlass", "fp8", 1.0, 128),
])
def test_tile_rules(kernel, variant, rows, tile):
    assert tile_rows(kernel, variant, 4096, rows) == tile


@pytest.mark.parametrize(("tokens", "top_k", "local_experts", "tile"), [
    (1, 8, 256, 8),  # 8 / 256 pairs an expert: the ladder's front, 8 (no smaller candidate)
    (256, 8, 256, 8),  # 8 an expert: centre 8, candidates {8, 16, 32}: 8
    (1024, 8, 256, 16),  # 32 an expert: centre 32, candidates {16, 32, 64, 128}: 16
    (1024, 8, 32, 128),  # EP 8 of E 256 (32 local experts), all 1,024 tokens routed: 256 an expert: centre 256: 128
    (4100, 8, 256, 128),  # 128.1 an expert: centre 256, candidates {128, 256}: 128
    (3, 1, 1, 8),  # 3 pairs on one local expert: centre 8 (clamped up): 8
])
def test_trtllm_nvfp4_default_tile_follows_pairs_per_local_expert(tokens, top_k, local_experts, tile):
    # FlashInfer's FP4 launcher without an autotuned tactic: the smallest candidate, one ladder step below
    # clamp(next power of two of T k / local experts, 8, 256); rows per *hit* expert play no part
    per_local = tokens * top_k / local_experts
    assert tile_rows("trtllm", "nvfp4", tokens, 1.0, per_local) == tile
    assert tile_rows("trtllm", "bf16", tokens, 1.0, per_local) == 8  # other variants keep the hit-expert rule
    with pytest.raises(ValueError, match="pairs per local expert"):
        tile_rows("trtllm", "nvfp4", tokens, 1.0)


def test_nvfp4_tile_in_the_efficiency_by_hand():
    # Blackwell, nvfp4: 10 tokens, k 2, over 4 local experts, exactly 5 rows each: 10 x 2 / 4 = 5 pairs
    # an expert -> centre 8 -> tile 8: 32 rows run for 20 filled. With EP 8 the same rank's 4 experts
    # get the same 5 rows, but FlashInfer sizes the tile by all 80 tokens routed (80 x 2 / 4 = 40 ->
    # centre 64 -> tile 32): 4 x 32 = 128 rows run.
    row_flops = 1e9
    shape = MoEShape(routed=10, bins=((4, 0.5),), pairs=20, experts=4, row_flops=row_flops, variant="nvfp4",
                     spread=0, top_k=2)
    p = profile("blackwell", "moe_nvfp4_compute = 0.5\nmoe_nvfp4_tile_switch = 1")
    counts = Counts(flops={"fp4": 20 * row_flops}, kernel=shape)
    assert efficiency_for("moe", counts, p).by_precision["fp4"] == pytest.approx(0.5 * 20 / 32)
    ep = replace(shape, routed=80, bins=((4, 5 / 80),), ep=8)
    assert efficiency_for("moe", replace(counts, kernel=ep), p).by_precision["fp4"] == pytest.approx(0.5 * 20 / 128)


def test_fp4_gemm1_epilogue_fuses_the_intermediate_on_blackwell():
    # TRT-LLM-gen FP4: the gated activation and the NVFP4 quantization of the intermediate run in GEMM1's
    # epilogue, so the 16-bit round trip the counts hold (GEMM1's 2I outputs written and read, the
    # activation's I outputs written and read) is not moved: 2 x (2I + I) bf16 elements a pair.
    from tensor_cast.backends.roofline import op_time

    hidden, inter, pairs = 1024, 512, 20
    row_flops = 2 * hidden * 2 * inter + 2 * inter * hidden  # gated: gate+up 2I wide, then down
    total = 50e6  # bytes the counts hold, the round trip included
    saved = pairs * 2 * 2 * (2 * inter + inter)  # 122,880 bytes
    shape = MoEShape(routed=10, bins=((4, 0.5),), pairs=pairs, experts=4, row_flops=row_flops, hidden=hidden,
                     intermediate=inter, variant="nvfp4", spread=0, act_bytes=2)
    counts = Counts(flops={"fp4": pairs * row_flops}, bytes_read=total, kernel=shape)
    keys = "moe_nvfp4_memory = 0.5"
    blackwell, hopper = op_time(counts, "moe", profile("blackwell", keys)), op_time(counts, "moe", profile("hopper", keys))
    assert float(blackwell.memory_s) == pytest.approx((total - saved) / (2000e9 * 0.5))
    assert float(hopper.memory_s) == pytest.approx(total / (2000e9 * 0.5))  # no such kernel there
    with pytest.raises(ValueError, match="unfused activation round trip"):
        op_time(replace(counts, bytes_read=saved), "moe", profile("blackwell", keys))


def test_tile_rule_is_symbolic_safe():
    tile = tile_rows("trtllm", "bf16", B, B / 4)
    assert isinstance(tile, sympy.Basic)
    assert tile.subs(B, 4) == 8 and tile.subs(B, 100) == 32 and tile.subs(B, 10_000) == 64
    with pytest.raises(ValueError, match="no tile rule"):
        tile_rows("nope", "bf16", 1, 1)


# ---- expected padded rows -----------------------------------------------------------------------
def test_exact_rows_pad_to_whole_tiles():
    # 4 experts, 10 tokens, q = 0.5: each expert gets exactly 5 rows; 8-row tiles: 4 x 8 rows
    shape = MoEShape(routed=10, bins=((4, 0.5),), pairs=20, experts=4, row_flops=1, spread=0)
    assert padded_rows(shape, 8) == 4 * 8
    # 20 rows each in 8-row tiles: ceil(20 / 8) = 3 tiles = 24 rows
    assert padded_rows(replace(shape, routed=40), 8) == 4 * 24


def test_random_rows_pay_half_a_tile_above_half_a_tile():
    # one expert hit with probability p: below half a tile it pays one tile per hit
    assert expected_tiles(1.0, 0.6, 16, 1) == pytest.approx(0.6)
    # 100 rows in 16-row tiles: 100 / 16 + 1 / 2 tiles on average
    assert expected_tiles(100.0, 1.0, 16, 1) == pytest.approx(100 / 16 + 0.5)
    shape = MoEShape(routed=10, bins=((4, 0.5),), pairs=20, experts=4, row_flops=1, spread=1)
    hit = 1 - 0.5**10
    assert padded_rows(shape, 8) == pytest.approx(4 * 8 * max(hit, 5 / 8 + hit / 2))


# ---- the efficiency --------------------------------------------------------------------------------
def _meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, dtype=torch.bfloat16, device="meta")


def _moe_counts(tokens: int, experts: int, top_k: int, hidden: int, inter: int, skew: float = 0.0) -> Counts:
    from tensor_cast.backends.formulas.registry import CostKnobs, tensor_infos

    args = (_meta(tokens, hidden), _meta(experts, hidden), [], _meta(experts, 2 * inter, hidden),
            _meta(experts, hidden, inter), None, None, [], [], top_k, "softmax", "silu", "concat", False, "none", 1, 1)
    out = tc.moe.default(*args)
    call = OpCall(op=tc.moe.default, args=tensor_infos(args), outputs=(tensor_infos(out),),
                  knobs=CostKnobs(moe_skew=skew))
    return moe(call)


def test_padding_scales_the_routed_gemms_compute_fraction():
    # E = 8, k = 2, H = 256, I = 128, T = 4 tokens, uniform random routing on Hopper (Triton)
    t, e, k, h, i = 4, 8, 2, 256, 128
    counts = _moe_counts(t, e, k, h, i)
    hit = 1 - (1 - k / e) ** t  # per expert
    pairs, rows_per_hit = t * k, t * k / (e * hit)
    assert rows_per_hit < 16  # Triton's smallest tile: 16 rows
    padded = e * 16 * max(hit, (t * k / e) / 16 + hit / 2)
    row_flops = 2 * h * 2 * i + 2 * i * h
    work = 2 * t * e * h + pairs * row_flops  # router GEMM + the routed GEMMs
    p = profile("hopper", "moe_bf16_compute = 0.5\nmoe_bf16_tile_switch = 1")
    eff = efficiency_for("moe", counts, p)
    assert eff.compute == pytest.approx(0.5 * work / (work + (padded - pairs) * row_flops))
    # without the tile switch: the flat fraction
    flat = profile("hopper", "moe_bf16_compute = 0.5")
    assert efficiency_for("moe", counts, flat).compute == pytest.approx(0.5)
    # an architecture without a kernel table keeps the fraction too
    assert efficiency_for("moe", counts, profile("x1", "moe_bf16_compute = 0.5\nmoe_bf16_tile_switch = 1")).compute \
        == pytest.approx(0.5)


def test_k_overhead_slows_short_k_gemms():
    h, i, k0 = 1024, 128, 256.0
    shape = MoEShape(routed=1000, bins=((8, 0.25),), pairs=2000, experts=8, row_flops=2 * h * 2 * i + 2 * i * h,
                     hidden=h, intermediate=i, spread=0)
    counts = Counts(flops={"bf16": 2000 * shape.row_flops}, bytes_read=1, kernel=shape)
    p = profile("x1", f"moe_bf16_compute = 0.5\nmoe_bf16_k_overhead = {k0}")
    up, down = 2 * h * 2 * i, 2 * i * h
    slow = (up * (1 + k0 / h) + down * (1 + k0 / i)) / (up + down)  # each GEMM at compute x K / (K + K0)
    assert efficiency_for("moe", counts, p).compute == pytest.approx(0.5 / slow)


def test_every_extra_m_tile_rereads_its_experts_weights():
    # Blackwell TRT-LLM: 2 experts with exactly 100 rows each -> 64-row tiles, 2 tiles each
    shape = MoEShape(routed=100, bins=((2, 1.0),), pairs=200, experts=2, row_flops=10, expert_bytes=1000, spread=0)
    counts = Counts(flops={"bf16": 2000}, bytes_read=3000, kernel=shape)
    p = profile("blackwell", "moe_bf16_memory = 0.8\nmoe_bf16_tile_switch = 1\nmoe_bf16_reread = 0.5")
    extra = 0.5 * (2 * 2 - 2) * 1000  # one re-read of each expert, half of it from HBM
    assert efficiency_for("moe", counts, p).memory == pytest.approx(0.8 * 3000 / (3000 + extra))


def test_variant_keys_apply_to_their_scheme_only():
    counts = _moe_counts(4, 8, 2, 256, 128)
    p = profile("hopper", "moe_compute = 0.3\nmoe_fp8_compute = 0.9\nmoe_fp8_latency_us = 50.0")
    assert efficiency_for("moe", counts, p) == base_efficiency("moe", p)  # a bf16 layer: the kind's values


# ---- skew ---------------------------------------------------------------------------------------------
def test_skewed_routing_bins_the_experts_by_popularity():
    e, k, s = 16, 2, 1.0
    harmonic = sum(1 / j for j in range(1, e + 1))
    q = [k / harmonic / j for j in range(1, e + 1)]  # no expert capped: k / H_16 < 1
    bins = rank_bins(e, k, s, 1)
    assert [n for n, _ in bins] == [2] * 8
    assert [b for _, b in bins] == pytest.approx([(q[2 * j] + q[2 * j + 1]) / 2 for j in range(8)])
    assert rank_bins(e, k, 0.0, 4) == ((4, k / e),)


def test_skew_costs_more_padding_than_uniform_routing():
    uniform, skewed = _moe_counts(512, 64, 4, 512, 256), _moe_counts(512, 64, 4, 512, 256, skew=1.2)
    p = profile("blackwell", "moe_bf16_compute = 0.5\nmoe_bf16_tile_switch = 1")
    assert efficiency_for("moe", skewed, p).compute < efficiency_for("moe", uniform, p).compute


# ---- the AIC table helpers -----------------------------------------------------------------------
aic_tables, routing = benchmarks("aic_tables", "aic_moe_routing")


def test_every_table_dtype_maps_to_a_scheme():
    from tensor_cast.deployment.quantization import accepted_quant

    assert aic_tables.MOE_DTYPES["int4_wo"] == "w4a16" and aic_tables.MOE_DTYPES["w4a16_mxfp4"] == "mxfp4"
    assert set(aic_tables.MOE_DTYPES.values()) <= set(accepted_quant())


def test_balanced_routing_of_the_tables():
    # 32 tokens, 256 experts, k = 8: stride 32, token i picks i, i + 32, ...: every expert once
    assert list(routing.balanced_counts(32, 256, 8)) == [1] * 256
    # 4 tokens: floor(i * 32 / 4) + 32 j: experts 0, 8, 16, 24 (+ 32 j), one row each
    counts = routing.balanced_counts(4, 256, 8)
    assert sorted(int(x) for x in counts.nonzero()[0]) == sorted(8 * i + 32 * j for i in range(4) for j in range(8))
    # 1,024 tokens: 32 rows per expert
    assert set(routing.balanced_counts(1024, 256, 8)) == {32}


def test_power_law_routing_of_the_tables():
    t, e, k, ep = 1024, 64, 4, 8
    counts = routing.power_law_counts(t, e, k, ep, 1.01, seed=3)
    assert counts.sum() == t * k
    loads = counts.reshape(ep, e // ep).sum(axis=1)
    assert loads[0] == loads.max()  # the timed rank holds the largest load
    # heavy-tailed: the hottest expert takes several times the mean share
    assert counts.max() > 3 * t * k / e
    rows = aic_tables.routed_rows("power_law_1.01", t, e, k, ep, seed=3)
    assert len(rows) == e // ep and max(rows) <= t
    with pytest.raises(ValueError, match="unknown MoE routing"):
        aic_tables.routed_rows("zipf", t, e, k, ep, 0)


def test_ungated_experts_stream_a_third_less():
    gated = aic_tables.moe_ops(64, 1024, 512, 2, 16, 1, 1, "none")[0].counts
    ungated = aic_tables.moe_ops(64, 2688, 1856, 6, 128, 1, 1, "none")[0].counts
    assert ungated.kernel.row_flops == 2 * 2688 * 1856 + 2 * 1856 * 2688  # up + down, no gate
    assert gated.kernel.row_flops == 2 * 1024 * 1024 + 2 * 512 * 1024
    assert math.isclose(ungated.kernel.expert_bytes, 2 * 2688 * 1856 * 2)


def test_ep_rows_of_the_modular_kernels_carry_the_other_ranks_rows():
    # 64 tokens, k = 2, E = 16 over ep = 4: balanced routing puts 8 rows on each expert, 32 on the rank;
    # vLLM's expert-map path (Triton) still writes, activates and sums the other 96 rows (no GEMM)
    t, h, i, k, e, ep = 64, 256, 128, 2, 16, 4
    rows = aic_tables.routed_rows("balanced", t, e, k, ep, 0)
    assert rows == [8] * 4
    modular = aic_tables.moe_table_ops(t, h, i, k, e, 1, ep, "none", rows)[0].counts
    trtllm = aic_tables.moe_table_ops(t, h, i, k, e, 1, ep, "none", rows, local_only=True)[0].counts
    remote = t * k - sum(rows)
    n1 = 2 * i
    per_row = (4 + 2 * h + 2 * n1 + 2 * i + 2 * h) + (4 + 2 * n1 + 2 * i + 2 * h)  # index, rows in and out, bf16
    assert modular.bytes - trtllm.bytes == remote * per_row
    assert modular.flops["bf16"] == trtllm.flops["bf16"]  # the remote rows run no GEMM


def test_flashinfer_kernels_permute_only_local_rows():
    # FlashInfer's CUTLASS and TRT-LLM fused MoE take the EP rank (ep_size / ep_rank, local experts), and
    # gpt-oss's OAI Triton kernel routes the local experts only; vLLM's Triton and Marlin kernels run the
    # expert-map path
    local = ("vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts",
             "vllm_fp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic",
             "vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic")
    modular = ("vllm_fp8moe_triton_tritonexperts", "vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts")
    assert all(aic_tables.local_rows_only(k) for k in local)
    assert not any(aic_tables.local_rows_only(k) for k in modular)


def test_time_of_a_tiny_padded_moe_by_hand():
    # Blackwell TRT-LLM, 4 experts x exactly 5 rows (20 rows): the 8-row tile pads each to 8 (32 rows).
    # 1 GFLOP per row, 1 MB per expert; bf16 400 TFLOP/s at 0.5, 2,000 GB/s at 1.0, 10 us, overlap 0.
    from tensor_cast.backends.roofline import op_time

    row_flops, expert_bytes = 1e9, 1e6
    shape = MoEShape(routed=10, bins=((4, 0.5),), pairs=20, experts=4, row_flops=row_flops,
                     expert_bytes=expert_bytes, spread=0)
    counts = Counts(flops={"bf16": 20 * row_flops}, bytes_read=4 * expert_bytes, kernel=shape)
    p = profile("blackwell", "moe_bf16_compute = 0.5\nmoe_bf16_memory = 1.0\nmoe_bf16_latency_us = 10.0\n"
                             "moe_bf16_tile_switch = 1")
    compute = 32 * row_flops / (400e12 * 0.5)  # the padded rows' MMAs: 160 us
    memory = 4 * expert_bytes / 2000e9  # 2 us
    t = op_time(counts, "moe", p)
    assert t.compute_s == pytest.approx(compute) and t.memory_s == pytest.approx(memory)
    assert float(t.time_s) == pytest.approx(max(compute, memory) + 10e-6)


def test_padded_rows_pairs_and_ep_calls_by_hand():
    # The tiny layer above (4 experts x 5 rows in 8-row tiles: 12 padded rows), now with a padded row
    # costing 1.5x more than its MMAs, 2 ns per routed pair (10 tokens x k 2) and an EP call's 7 us.
    from tensor_cast.backends.roofline import op_time

    row_flops, expert_bytes = 1e9, 1e6
    shape = MoEShape(routed=10, bins=((4, 0.5),), pairs=20, experts=4, row_flops=row_flops,
                     expert_bytes=expert_bytes, spread=0, top_k=2, ep=4)
    counts = Counts(flops={"bf16": 20 * row_flops}, bytes_read=4 * expert_bytes, kernel=shape)
    p = profile("blackwell", "moe_bf16_compute = 0.5\nmoe_bf16_memory = 1.0\nmoe_bf16_latency_us = 10.0\n"
                             "moe_bf16_tile_switch = 1\nmoe_bf16_pad_penalty = 1.5\nmoe_bf16_pair_ns = 2.0\n"
                             "moe_bf16_ep_latency_us = 7.0")
    compute = (20 + 12 * 2.5) * row_flops / (400e12 * 0.5)  # filled rows, then padded ones at 1 + 1.5
    t = op_time(counts, "moe", p)
    assert t.compute_s == pytest.approx(compute)
    assert float(t.time_s) == pytest.approx(compute + 10e-6 + 20 * 2e-9 + 7e-6)
    tp = op_time(replace(counts, kernel=replace(shape, ep=1)), "moe", p)  # no EP: no EP call cost
    assert float(t.time_s) - float(tp.time_s) == pytest.approx(7e-6)


MIB = 2**20


def test_l2_keeps_a_replayed_working_set_up_to_half_its_size_none_from_its_size():
    l2 = 100 * MIB
    assert l2_resident_share(40 * MIB, l2) == 1 and l2_resident_share(50 * MIB, l2) == 1
    assert l2_resident_share(75 * MIB, l2) == pytest.approx(0.5)  # linear from C / 2 (all) to C (none)
    assert l2_resident_share(100 * MIB, l2) == 0 and l2_resident_share(300 * MIB, l2) == 0
    assert l2_resident_share(10 * MIB, 0) == 0  # a profile without an L2 size: nothing resident
    symbolic = l2_resident_share(B * MIB, l2)
    assert symbolic.subs(B, 75) == pytest.approx(0.5) and symbolic.subs(B, 20) == 1


def test_replayed_expert_weights_stream_from_l2_by_hand():
    # Blackwell bf16 (TRT-LLM), 2 experts hit, 10 MiB of weights each, 25 MiB moved in all; L2 100 MiB;
    # HBM 2,000 GB/s at 0.5, the L2-resident weights at 8,000 GB/s.
    from tensor_cast.backends.roofline import op_time

    shape = MoEShape(routed=4, bins=((2, 0.5),), pairs=4, experts=8, row_flops=10, expert_bytes=10 * MIB, spread=0)
    counts = Counts(flops={"bf16": 40}, bytes_read=25 * MIB, kernel=shape)
    head = profile_head("moe-gpu", "MoE GPU").replace('architecture = "x1"', 'architecture = "blackwell"')
    text = head.replace("bandwidth_gbps = 2000.0", "bandwidth_gbps = 2000.0\nl2_cache_mib = 100.0")
    p = parse_profile(text + "\n[efficiency.vllm]\nmoe_bf16_memory = 0.5\nmoe_bf16_l2_gbps = 8000.0\n"
                      + profile_sources() + '"efficiency" = "a test"\n', engine="vllm")
    served = op_time(counts, "moe", p)  # replay_bytes 0: a served step, every byte from HBM
    assert float(served.memory_s) == pytest.approx(25 * MIB / 1000e9)
    replayed = op_time(replace(counts, kernel=replace(shape, replay_bytes=20 * MIB)), "moe", p)
    assert float(replayed.memory_s) == pytest.approx(5 * MIB / 1000e9 + 20 * MIB / 8000e9)
    # a 90 MiB working set: 0.2 of it resident (2 - 2 x 0.9), 4 MiB of the 20 MiB read from L2
    partly = op_time(replace(counts, kernel=replace(shape, replay_bytes=90 * MIB)), "moe", p)
    assert float(partly.memory_s) == pytest.approx(21 * MIB / 1000e9 + 4 * MIB / 8000e9)


def test_trtllm_routing_takes_its_cluster_path_above_16_tokens_by_hand():
    from tensor_cast.backends.roofline import op_time

    assert routing_path_s(16, 5e-6) == 0 and routing_path_s(17, 5e-6) == 5e-6
    assert routing_path_s(B, 5e-6).subs(B, 4) == 0 and routing_path_s(B, 5e-6).subs(B, 64) == 5e-6
    keys = "moe_bf16_latency_us = 10.0\nmoe_bf16_routing_us = 5.0"
    shape = MoEShape(routed=16, bins=((2, 0.5),), pairs=16, experts=8, row_flops=10, spread=0)
    counts = Counts(flops={"bf16": 160}, kernel=shape, launches=1)
    wide = replace(counts, kernel=replace(shape, routed=32))
    blackwell, hopper = profile("blackwell", keys), profile("hopper", keys)
    assert float(op_time(counts, "moe", blackwell).latency_s) == pytest.approx(10e-6)  # one CTA routes 16 tokens
    assert float(op_time(wide, "moe", blackwell).latency_s) == pytest.approx(15e-6)  # 32: the cluster kernel
    assert float(op_time(wide, "moe", hopper).latency_s) == pytest.approx(10e-6)  # Triton: no such path


def test_table_rows_replay_their_hit_experts():
    # AIConfigurator's harness replays one layer back to back: the experts its replays touch are what the
    # next replay may find in L2. 64 tokens, k 2, E 16 over ep 4: 4 local experts, all hit.
    t, h, i, k, e, ep = 64, 256, 128, 2, 16, 4
    assert aic_tables.replayed_experts("balanced", t, e, k, ep, 0) == 4
    rows = aic_tables.routed_rows("balanced", t, e, k, ep, 0)
    replayed = aic_tables.moe_table_ops(t, h, i, k, e, 1, ep, "none", rows, local_only=True, replayed=4)
    served = aic_tables.moe_table_ops(t, h, i, k, e, 1, ep, "none", rows, local_only=True)
    expert = 2 * (2 * i * h + h * i)  # bf16 gate+up and down of one expert
    assert replayed[0].counts.kernel.replay_bytes == 4 * expert
    assert served[0].counts.kernel.replay_bytes == 0


def test_power_law_rows_replay_the_union_of_their_draws():
    # A power-law row's graph cycles through 5 draws. Above T k = E each draw hits its own experts: the
    # union of the 5 seeded draws (at least the first draw's hits, at most the rank's experts).
    t, k, e, ep = 64, 2, 64, 1
    union = set()
    for j in range(routing.POWER_LAW_DRAWS):
        union |= {x for x, r in enumerate(aic_tables.routed_rows("power_law_1.2", t, e, k, ep, 7 + j)) if r}
    first = sum(1 for r in aic_tables.routed_rows("power_law_1.2", t, e, k, ep, 7) if r)
    assert aic_tables.replayed_experts("power_law_1.2", t, e, k, ep, 7) == len(union)
    assert first <= len(union) <= e
    # T k <= E: the generator's loads all round to 0 and its remainder goes to the same experts every
    # draw: the costed draw's hit experts alone
    small = sum(1 for r in aic_tables.routed_rows("power_law_1.2", 8, 256, 8, 1, 7) if r)
    assert aic_tables.replayed_experts("power_law_1.2", 8, 256, 8, 1, 7) == small


def test_mxfp4_experts_on_marlin_take_marlins_tiles_and_parameters():
    # vLLM's Marlin MoE runs MXFP4 experts (mxfp4_marlin) as it runs int4 ones: 4 experts x 5 rows take
    # Marlin's 8-row tiles (5 < 0.9 x 8; OAI Triton's would be 16) at the w4a16 section's rate, not mxfp4's
    from tensor_cast.backends.roofline import op_time

    row_flops, expert_bytes = 1e9, 1e6
    shape = MoEShape(routed=10, bins=((4, 0.5),), pairs=20, experts=4, row_flops=row_flops,
                     expert_bytes=expert_bytes, variant="mxfp4_marlin", spread=0)
    counts = Counts(flops={"bf16": 20 * row_flops}, bytes_read=4 * expert_bytes, kernel=shape)
    p = profile("hopper", "moe_w4a16_compute = 0.5\nmoe_w4a16_memory = 1.0\nmoe_w4a16_latency_us = 10.0\n"
                          "moe_w4a16_tile_switch = 1\nmoe_mxfp4_compute = 0.25\nmoe_mxfp4_tile_switch = 1")
    t = op_time(counts, "moe", p)
    assert t.compute_s == pytest.approx(32 * row_flops / (400e12 * 0.5))  # 20 rows + 12 padded, at 0.5
    triton = op_time(replace(counts, kernel=replace(shape, variant="mxfp4")), "moe", p)
    assert triton.compute_s == pytest.approx(64 * row_flops / (400e12 * 0.25))  # 16-row tiles at 0.25


def test_mxfp4_experts_pad_to_256_on_blackwell():
    # vLLM pads MXFP4 experts to multiples of 256 for FlashInfer's TRT-LLM kernels: an I = 64 expert
    # (TP 32 of I = 2,048) runs the MMAs and streams the weights of I = 256, 4x its own
    from tensor_cast.backends.roofline import op_time

    def layer(inter: int) -> Counts:
        row_flops = 3 * 2 * 4096 * inter
        shape = MoEShape(routed=64, bins=((8, 1.0),), pairs=512, experts=8, row_flops=row_flops, hidden=4096,
                         intermediate=inter, expert_bytes=3 * 4096 * inter * 0.53, variant="w4a8_mxfp4_mxfp8",
                         spread=0)
        return Counts(flops={"fp8": 512 * row_flops}, bytes_read=8 * 3 * 4096 * inter * 0.53, kernel=shape)

    keys = "moe_w4a8_mxfp4_mxfp8_compute = 0.5\nmoe_w4a8_mxfp4_mxfp8_memory = 0.8"
    narrow, wide = op_time(layer(64), "moe", profile("blackwell", keys)), op_time(layer(256), "moe", profile("blackwell", keys))
    assert narrow.compute_s == pytest.approx(wide.compute_s) and narrow.memory_s == pytest.approx(wide.memory_s)
    hopper = profile("hopper", keys)  # no such padding on Hopper: a quarter of the bytes and MMAs
    h_narrow, h_wide = op_time(layer(64), "moe", hopper), op_time(layer(256), "moe", hopper)
    assert h_narrow.memory_s == pytest.approx(h_wide.memory_s / 4)
    assert h_narrow.compute_s == pytest.approx(h_wide.compute_s / 4)


def test_simulate_takes_the_moe_skew_of_its_steps():
    """simulate(moe_skew=s) costs every step with skewed routing: on the tile model's section (vllm)
    fewer experts are hit, more rows pad cold experts' tiles; a bad skew is the analyze error."""
    import tensor_cast
    from tensor_cast.errors import TensorCastError

    run = dict(device="b200", engine="vllm", concurrency=4, num_requests=4, isl=512, osl=4, num_hidden_layers=1)
    uniform = tensor_cast.simulate("Qwen/Qwen3-30B-A3B", **run)
    skewed = tensor_cast.simulate("Qwen/Qwen3-30B-A3B", moe_skew=1.2, **run)
    assert skewed.mean_ttft_s != uniform.mean_ttft_s
    assert any("moe_skew 1.2" in note for note in skewed.notes) and not any("moe_skew" in n for n in uniform.notes)
    with pytest.raises(TensorCastError, match="moe_skew"):
        tensor_cast.simulate("Qwen/Qwen3-30B-A3B", moe_skew=-1.0, **run)


def test_group_limited_balanced_routing_keeps_half_the_groups():
    # DeepSeek-V3 (E 256 in 8 groups of 32, k 8, 4 groups kept): a token's balanced experts are i + 32 j,
    # one per group; all groups tie, groups 0-3 win, so it keeps i, i + 32, i + 64, i + 96 and fills
    # its other 4 picks with the lowest-indexed free experts of group 0
    one = routing.group_limited_counts(1, 256, 8, 8, 4)
    assert sorted(one.nonzero()[0].tolist()) == [0, 1, 2, 3, 4, 32, 64, 96]
    rows = routing.group_limited_counts(32, 256, 8, 8, 4)
    assert rows.sum() == 32 * 8
    assert (rows[:128] > 0).all() and not rows[128:].any()  # half the experts, every one of groups 0-3
    assert rows[:4].tolist() == [32, 32, 32, 32]  # the fill experts take every token
    assert aic_tables.routed_rows("balanced", 32, 256, 8, 1, 0, groups=(8, 4)) == rows.tolist()


def test_the_hopper_per_tensor_fp8_moe_kernel_is_said():
    """Per-tensor FP8 experts on Hopper run FlashInfer's CUTLASS MoE, which the vLLM tables time far
    above reading the weights at decode sizes: the report says so, and names the block-FP8 alternative.
    Not for block FP8, a dense model, or Blackwell (TRT-LLM-gen kernels)."""
    import tensor_cast

    def said(model, quant, device):
        report = tensor_cast.analyze(model, device=device, quant=quant, batch_size=1, query_len=1,
                                     num_hidden_layers=1)
        return any(n.startswith("per-tensor FP8 MoE on Hopper") for n in report.context.notes)

    assert said("Qwen/Qwen3-30B-A3B", "fp8", "h100-sxm")
    assert not said("Qwen/Qwen3-30B-A3B", "fp8_block", "h100-sxm")
    assert not said("meta-llama/Llama-3.1-8B", "fp8", "h100-sxm")
    assert not said("Qwen/Qwen3-30B-A3B", "fp8", "b200")
